"""Exporters for SHViT: one sub-package per target, staged config → export → optimise/quantise → validate.

Python API (what the commands are thin layers over)::

    import convert
    result = convert.export(model, target="coreml", labels=["cat", "dog"])   # -> ExportResult
    report = convert.check([result.path], reference=model)                   # -> CheckReport

- :mod:`convert.targets`   the registry of targets (one :class:`~convert.targets.Target` per sub-package)
- :mod:`convert.config`    what an export is: model, options, output
- :mod:`convert.onnx`, :mod:`convert.coreml`, :mod:`convert.tflite`, :mod:`convert.coreai`   the targets
- :mod:`convert.api`       export and check, stage by stage
- :mod:`convert.validate`  parity against PyTorch: runtimes in subprocesses, reports
- :mod:`convert.bench`     the benchmark
- :mod:`convert.io`        atomic staging, scratch folders, sidecars
- :mod:`convert.cli`       the commands (``shvit-convert``, ``shvit-check``, ``shvit-bench``, ``shvit-demo``)
"""

from __future__ import annotations

from typing import Any

from convert.errors import ArgumentError, ConvertError, ToleranceError

__all__ = ["ArgumentError", "CheckReport", "ConvertError", "ExportResult", "ToleranceError", "check", "export"]


def __getattr__(name: str) -> Any:
    """The API loads torch and the pipeline on first use: ``import convert`` stays cheap."""
    if name in ("export", "check", "ExportResult"):
        from convert import api

        return getattr(api, name)
    if name == "CheckReport":
        from convert.validate.report import CheckReport

        return CheckReport
    raise AttributeError(f"module 'convert' has no attribute {name!r}")
