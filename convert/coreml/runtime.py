"""Core ML backend for :mod:`convert.validate.runner` (runs inside its subprocess).

On macOS the package runs in Core ML itself and its extra ``logits`` output is compared; elsewhere
the reference MIL executor reads the same package and returns the variable feeding the softmax.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from convert.errors import ConvertError


def run(path: Path, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    if sys.platform == "darwin":
        return _run_core_ml(path, pixels)
    import torch

    from convert.coreml.mil_executor import MILExecutor

    threads = int(os.environ.get("SHVIT_THREADS", "0"))
    if threads:
        torch.set_num_threads(threads)
    executor = MILExecutor(path)
    mode = "fp16 emulated" if executor.is_fp16 else "fp32"
    return executor.logits(pixels), f"reference MIL executor, {mode} (Core ML cannot run on Linux)"


def _run_core_ml(path: Path, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    from PIL import Image

    from convert.coreml.ctimport import import_coremltools
    from convert.coreml.export import LOGITS_NAME

    ct = import_coremltools()
    model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
    description = model.get_spec().description
    if LOGITS_NAME not in {o.name for o in description.output}:
        raise ConvertError(f"{path.name} has no '{LOGITS_NAME}' output to compare: export it with shvit-convert")
    image = description.input[0]
    height, width = image.type.imageType.height, image.type.imageType.width
    if pixels.shape[1:3] != (height, width):
        raise ConvertError(f"{path.name} takes {width}x{height} images, got {pixels.shape[2]}x{pixels.shape[1]}: wrong variant or input size?")
    outputs = model.predict([{image.name: Image.fromarray(np.ascontiguousarray(p))} for p in pixels])
    logits = np.stack([np.asarray(o[LOGITS_NAME], dtype=np.float32).reshape(-1) for o in outputs])
    return logits, f"Core ML {ct.__version__} runtime on macOS (compute units: all)"
