"""ONNX target: the deploy model with pixel input, traced at opset 17 and simplified, fp32 or fp16 (:mod:`.target`)."""

from __future__ import annotations

from typing import Any

__all__ = ["export_onnx", "to_fp16", "to_proto"]


def __getattr__(name: str) -> Any:
    """Pure functions load onnx and torch on first use, so the registry can read the target cheaply."""
    if name in __all__:
        from convert.onnx import export

        return getattr(export, name)
    raise AttributeError(name)
