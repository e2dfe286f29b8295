"""Typed errors of the demo generators; ``shvit-demo`` prints each as one line."""
from __future__ import annotations

from shvit.errors import SHViTError


class DemoError(SHViTError):
    """A demo app that cannot be generated as asked (bad path, existing output, unreadable model)."""


class NotAnImageClassifier(DemoError):
    """The model is readable but is not a single-image-input classifier, which is all the demo apps run."""
