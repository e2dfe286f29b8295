"""Core ML target (:mod:`.target`): classifier ``.mlpackage`` export and a reference MIL executor to check it on Linux."""

from __future__ import annotations

from typing import Any

__all__ = ["export_coreml", "plain_conversion", "to_mlmodel"]


def __getattr__(name: str) -> Any:
    """Pure functions load coremltools on first use, so the registry can read the target cheaply."""
    if name in __all__:
        from convert.coreml import export

        return getattr(export, name)
    raise AttributeError(name)
