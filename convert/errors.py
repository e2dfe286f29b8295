"""Typed errors of the export pipeline; the CLI prints each as one line."""
from __future__ import annotations

from shvit.errors import SHViTError


class ConvertError(SHViTError):
    """An export that cannot be done as asked (bad option, missing tool, failed conversion)."""


class NotBuiltYet(ConvertError):
    """A target or precision whose exporter has not landed yet."""


class RuntimeCrash(ConvertError):
    """A runtime died (native abort, segfault) while running an artifact in its subprocess."""


class ToleranceError(ValueError):
    """One or more parity figures outside their tolerance; lists every failure, not just the first."""

    def __init__(self, artifact: str, failures: list[str]) -> None:
        self.artifact = artifact
        self.failures = failures
        super().__init__(f"{artifact}: parity outside tolerance: " + "; ".join(failures))
