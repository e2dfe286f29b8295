"""Typed errors of the demo generators; ``shvit-demo`` prints each as one line."""

from __future__ import annotations

from pathlib import Path

from shvit.errors import SHViTError


class DemoError(SHViTError):
    """A demo app that cannot be generated as asked (bad path, existing output, unreadable model)."""


class NotAnImageClassifier(DemoError):
    """The model is readable but is not a single-image-input classifier, which is all the demo apps run."""


def checked_model_path(path: Path, *, suffix: str, folder: bool, target: str, kind: str, takes: str) -> Path:
    """``path`` once it exists with ``suffix`` (a folder or a file, as ``folder`` says), else the
    :class:`DemoError` every reader gives: missing, or not a ``kind``; ``takes`` says what the demo takes."""
    path = Path(path)
    if not path.exists():
        raise DemoError(f"{path} does not exist: give the {suffix} of a {target} export", argument="model_path")
    if path.suffix.lower() != suffix or not (path.is_dir() if folder else path.is_file()):
        raise DemoError(f"{path} is not a {kind}: {takes} (a {target} export)", argument="model_path")
    return path
