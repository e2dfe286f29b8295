"""The toolkit's one error root; the CLIs print each error as one line and exit non-zero.

A message is plain text that reads the same from Python and from a command line. The argument at
fault, when there is one, is not spelled in the text but named by ``argument`` (the Python keyword):
``str()`` leads with it (``calib: …``) and a command leads with its own flag (``--calib: …``), the way
argparse and click report a bad option.
"""

from __future__ import annotations


class SHViTError(ValueError):
    """The one root of the toolkit's errors (model, calibration, export, parity, demo)."""

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        self.message = message
        self.argument = argument
        super().__init__(self.led_by(argument))

    def led_by(self, name: str | None) -> str:
        """The message led by ``name``, the culprit's spelling where it is read (a keyword, a flag), if any."""
        return f"{name}: {self.message}" if name else self.message


class WeightsError(SHViTError):
    """A checkpoint that cannot be read, does not fit, or cannot be downloaded."""
