"""ONNX Runtime backend for :mod:`convert.validate.runner` (runs inside the subprocess)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def run(path: Path, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    threads = int(os.environ.get("SHVIT_THREADS", "0"))
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    x = pixels.astype(np.float32).transpose(0, 3, 1, 2)
    expected = inp.shape
    if len(expected) != 4 or any(isinstance(d, int) and d != s for d, s in zip(expected[1:], x.shape[1:])):
        raise ValueError(f"model input {inp.name} has shape {expected}, images are {list(x.shape)}: wrong variant or input size?")
    if isinstance(expected[0], int):
        outs = [session.run(None, {inp.name: x[i : i + 1]})[0] for i in range(len(x))]
        logits = np.concatenate(outs)
    else:
        logits = session.run(None, {inp.name: x})[0]
    return logits, f"ONNX Runtime {ort.__version__} (CPU)"
