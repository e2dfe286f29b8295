"""Functions the child-process tests run in a child (importable there: the child gets this process's sys.path)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from convert.errors import ArgumentError


def brightness(*, pixels: np.ndarray, label: str) -> dict[str, Any]:
    return {
        "label": label,
        "per_image": pixels.reshape(len(pixels), -1).mean(1, dtype=np.float64).astype(np.float32),
        "dtype": str(pixels.dtype),
    }


def refuse_argument(*, value: str) -> None:
    raise ArgumentError(f"{{calib={value}}} holds no images", argument="calib")


def abort() -> None:
    os.abort()


def hang() -> None:
    time.sleep(600)


def report_pid(*, emit: Callable[[dict[str, Any]], None]) -> None:
    emit({"event": "pid", "pid": os.getpid()})
    time.sleep(600)


def count_steps(*, steps: int, emit: Callable[[dict[str, Any]], None]) -> int:
    for step in range(steps):
        emit({"event": "step", "done": step + 1})
    return steps


def connect(*, port: int) -> str:
    """Tries the parent's local server, swallowing the refusal as a careless library would."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError as exc:
        return f"refused: {exc}"
    return "connected"


class Counter:
    """Served: state kept between calls."""

    def __init__(self, *, start: int) -> None:
        self.value = start

    def add(self, *, amount: int) -> int:
        self.value += amount
        return self.value
