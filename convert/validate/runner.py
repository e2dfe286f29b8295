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
        env = {"SHVIT_THREADS": str(threads)} if threads else {}
        try:
            run_child(["convert.validate.runner", module, str(artifact), str(inp), str(out)], timeout_s=timeout_s, env=env)
        except ChildFailure as exc:
            raise RuntimeCrash(f"{artifact.name}: {exc.describe('the runtime', 'while loading or running the model')}") from None
        if not out.exists():
            raise RuntimeCrash(f"{artifact.name}: the runtime wrote no result")
        with np.load(out) as data:
            return data["logits"], str(data["runtime"])


class ChildFailure(Exception):
    """A child process that timed out, died of a signal, or exited with an error line."""

    def __init__(self, *, timeout_s: float | None = None, signal_name: str | None = None, error: str = "") -> None:
        self.timeout_s, self.signal_name, self.error = timeout_s, signal_name, error
        super().__init__(error or signal_name or f"timeout after {timeout_s} s")

    def describe(self, subject: str, during: str) -> str:
        """One line: ``"<subject> crashed with SIGABRT <during>"`` and the like."""
        if self.timeout_s is not None:
            return f"{subject} did not finish within {self.timeout_s:.0f} s"
        if self.signal_name is not None:
            return f"{subject} crashed with {self.signal_name} {during}"
        return self.error


def run_child(args: list[str], *, timeout_s: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m ARGS`` isolated in a child: a native abort or hang becomes a :class:`ChildFailure`."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    try:
        proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout_s,
                              env=full_env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ChildFailure(timeout_s=timeout_s) from None
    if proc.returncode < 0:
        raise ChildFailure(signal_name=signal.Signals(-proc.returncode).name)
    if proc.returncode != 0:
        raise ChildFailure(error=_last_error_line(proc.stderr) or f"exited with code {proc.returncode}")
    return proc


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
    from convert.scratch import exit_with_parent

    exit_with_parent()
    sys.exit(_child(*sys.argv[1:5]))

