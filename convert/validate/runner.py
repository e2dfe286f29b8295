"""Run an exported artifact in its own runtime, in a subprocess.

Native runtimes abort on malformed graphs (LiteRT's ``allocate_tensors`` SIGABRT, for one): in a
child process that becomes a :class:`RuntimeCrash` with the signal's name, never a dead CLI.
Every backend takes the same input, uint8 RGB pixels (N, H, W, 3) from :mod:`calib`, and adapts
layout and dtype itself, so a comparison always feeds every runtime identical pixels.
"""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from convert.errors import ConvertError, RuntimeCrash

BACKENDS: dict[str, str] = {
    ".onnx": "convert.onnx.runtime",
    ".tflite": "convert.tflite.runtime",
    ".mlpackage": "convert.coreml.runtime",
}
DEFAULT_TIMEOUT_S = 900.0


def backend_for(artifact: Path) -> str:
    suffix = artifact.suffix.lower()
    if suffix not in BACKENDS:
        raise ConvertError(f"{artifact}: unknown artifact type {suffix or '(none)'}: expected .onnx, .tflite or .mlpackage")
    return BACKENDS[suffix]


def run_artifact(
    artifact: Path, pixels: np.ndarray, *, timeout_s: float = DEFAULT_TIMEOUT_S, threads: int | None = None
) -> tuple[np.ndarray, str]:
    """Logits of ``artifact`` on ``pixels`` and the name of the runtime that produced them."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise ConvertError(f"{artifact} does not exist")
    module = backend_for(artifact)
    with tempfile.TemporaryDirectory(prefix="shvit-run-") as tmp:
        inp, out = Path(tmp) / "in.npy", Path(tmp) / "out.npz"
        np.save(inp, np.ascontiguousarray(pixels, dtype=np.uint8))
        cmd = [sys.executable, "-m", "convert.validate.runner", module, str(artifact), str(inp), str(out)]
        env = dict(os.environ)
        if threads:
            env["SHVIT_THREADS"] = str(threads)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RuntimeCrash(f"{artifact.name}: the runtime did not finish within {timeout_s:.0f} s") from None
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            raise RuntimeCrash(f"{artifact.name}: the runtime crashed with {name} while loading or running the model")
        if proc.returncode != 0 or not out.exists():
            raise RuntimeCrash(f"{artifact.name}: {_last_error_line(proc.stderr) or f'runtime exited with code {proc.returncode}'}")
        with np.load(out) as data:
            return data["logits"], str(data["runtime"])


def _last_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("SHVIT_ERROR:"):
            return line.removeprefix("SHVIT_ERROR:").strip()
    return lines[-1][:300] if lines else ""


def _child(module_name: str, artifact: str, inp: str, out: str) -> int:
    """Entry point inside the subprocess: ``module.run(path, pixels) -> (logits, runtime_name)``."""
    try:
        module = importlib.import_module(module_name)
        pixels = np.load(inp)
        logits, runtime = module.run(Path(artifact), pixels)
        np.savez(out, logits=np.asarray(logits, dtype=np.float32), runtime=np.array(runtime))
    except Exception as exc:  # reported to the parent as one line
        report_child_error(exc)
        return 1
    return 0


def report_child_error(exc: BaseException) -> None:
    """The one line a parent's :func:`_last_error_line` picks out of a child's stderr."""
    text = str(exc).strip().splitlines()
    print(f"SHVIT_ERROR: {type(exc).__name__}: {text[0] if text else ''}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:5]))

