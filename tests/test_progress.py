"""Long steps draw a progress bar on a terminal, and only there: a log or CI output gets plain lines."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import calib


def _convert_args(tiny: Any, tmp_path: Path) -> list[str]:
    images = tmp_path / "calib"
    pixels, labels, names = calib.make_class_dataset(3, tiny.input_size, seed=3, num_classes=len(tiny.class_names))
    calib.write_dataset(images, pixels, labels, names)
    return [
        sys.executable,
        "-m",
        "convert.cli.convert",
        "--variant",
        "auto",
        "--weights",
        str(tiny.checkpoint),
        "--input-size",
        str(tiny.input_size),
        "--target",
        "tflite",
        "--precision",
        "int8",
        "--calib",
        str(images),
        "--out",
        str(tmp_path / "out"),
    ]


def _run_on_a_terminal(command: list[str]) -> tuple[int, str]:
    """``command`` with a pseudo-terminal as stdin, stdout and stderr; everything it drew."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a real terminal has a size
    proc = subprocess.Popen(
        command, stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True, env=dict(os.environ, TERM="xterm")
    )
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            data = os.read(controller, 1 << 16)
        except OSError:  # EIO: the terminal closed when the process ended
            break
        if not data:
            break
        chunks.append(data)
    os.close(controller)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_progress_bars_for_decoding_converting_and_calibrating(tiny: Any, tmp_path: Path) -> None:
    code, drawn = _run_on_a_terminal(_convert_args(tiny, tmp_path))
    assert code == 0, drawn
    assert "\r" in drawn and "%|" in drawn
    for step in ("decoding calib", "onnx2tf: ONNX → TensorFlow", "calibrating int8 on"):
        assert step in drawn, f"no progress shown for {step!r}:\n{drawn}"
    assert "step" in drawn and "img" in drawn  # the bars' units


def test_a_log_gets_step_lines_and_no_bar(tiny: Any, tmp_path: Path) -> None:
    proc = subprocess.run(_convert_args(tiny, tmp_path), capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    logged = proc.stdout + proc.stderr
    assert "\r" not in logged and "%|" not in logged  # no bar, no carriage returns
    assert "  onnx2tf: ONNX → TensorFlow" in logged and "  calibrating int8 on" in logged
    assert logged.count("fewer than the 32 requested") == 1, "a calibration folder's problem is reported once, not per use"
