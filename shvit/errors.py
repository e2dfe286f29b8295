"""Typed errors: callers (the CLIs) turn them into one clear line and a non-zero exit."""
from __future__ import annotations


class SHViTError(ValueError):
    """Base of every error the toolkit raises for bad user input."""


class WeightsError(SHViTError):
    """A checkpoint that cannot be read, does not fit, or cannot be downloaded."""
