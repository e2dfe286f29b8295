"""Errors raised by the calibration-image package."""

from __future__ import annotations

from shvit.errors import SHViTError


class CalibError(SHViTError):
    """A problem with the user's image folder or options.

    The message is always a single line that names the problem and says what
    to do, so command-line tools can print it as is instead of a traceback.
    """
