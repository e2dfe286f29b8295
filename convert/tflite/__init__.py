"""TFLite target (:mod:`.target`): export through ONNX and onnx2tf, LiteRT quantisation and metadata."""

from __future__ import annotations

from typing import Any

__all__ = ["export_tflite", "to_flatbuffer"]


def __getattr__(name: str) -> Any:
    """Pure functions load torch and onnx on first use, so the registry can read the target cheaply."""
    if name in __all__:
        from convert.tflite import export

        return getattr(export, name)
    raise AttributeError(name)
