"""Work isolated in a child process: a native abort or a hang becomes an exception with one line, never a dead CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

ERROR_MARK = "SHVIT_ERROR:"


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
    """``python -m ARGS`` in a child that imports what this process can (plugin targets included)."""
    search_path = os.pathsep.join(p for p in sys.path if p)
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": search_path, **(env or {})}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout_s, env=full_env, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ChildFailure(timeout_s=timeout_s) from None
    if proc.returncode < 0:
        raise ChildFailure(signal_name=signal.Signals(-proc.returncode).name)
    if proc.returncode != 0:
        raise ChildFailure(error=last_error_line(proc.stderr) or f"exited with code {proc.returncode}")
    return proc


def last_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_MARK):
            return line.removeprefix(ERROR_MARK).strip()
    return lines[-1][:300] if lines else ""


def report_child_error(exc: BaseException) -> None:
    """In the child: the one line :func:`last_error_line` picks out of its stderr."""
    text = str(exc).strip().splitlines()
    print(f"{ERROR_MARK} {type(exc).__name__}: {text[0] if text else ''}", file=sys.stderr)
