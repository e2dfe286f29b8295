"""LiteRT interpreters as Android runs them, for parity and timing (inside their subprocesses).

The interpreter applies XNNPACK by default, as on Android. Pixels arrive as uint8 NHWC RGB:
float models take them as float32 0-255, integer models through their input quantisation
(scale 1 and zero point 0 for this toolkit's uint8 input, so the bytes go in unchanged).
Integer outputs are dequantised so every runtime returns float logits.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np


def interpreter(path: Path, *, threads: int | None = None) -> tuple[Any, str]:
    """An allocated LiteRT interpreter for ``path`` and a description of it."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    version = metadata.version("ai-edge-litert")
    return it, f"LiteRT {version} (XNNPACK, {threads or 'default'} thread{'s' if threads != 1 else ''})"


def to_input(pixels: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """uint8 NHWC pixels in the dtype and quantisation the model's input tensor takes."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return pixels.astype(np.float32)
    scale, zero = detail["quantization"]
    if dtype == np.uint8 and scale == 1.0 and zero == 0:
        return pixels.astype(np.uint8)
    info = np.iinfo(dtype)
    return np.clip(np.round(pixels / scale + zero), info.min, info.max).astype(dtype)


def from_output(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.dtype(detail["dtype"]) in (np.dtype(np.int8), np.dtype(np.uint8)):
        scale, zero = detail["quantization"]
        return (values.astype(np.float32) - zero) * scale
    return values.astype(np.float32)
