"""Typed errors: callers (the CLIs) turn them into one clear line and a non-zero exit.

Messages name arguments as ``{name}`` or ``{name=VALUE}`` placeholders, so one error reads right
from Python (``calib=DIR``) and from a command line (``--calib DIR``): :meth:`SHViTError.for_cli`
renders it with the command's flag names, ``str()`` with the Python argument names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)(?:=([^{}]*))?\}")
_FLAGS = frozenset({"force", "strict", "random_init", "debug"})
"""Boolean arguments: ``{force}`` reads ``force=True`` from Python."""


def _render(template: str, spell: Mapping[str, str] | None) -> str:
    def one(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if spell is None:
            if value is not None:
                return f"{name}={value}"
            return f"{name}=True" if name in _FLAGS else name
        flag = spell.get(name, "--" + name.replace("_", "-"))
        return flag if value is None else f"{flag} {value}"

    return _PLACEHOLDER.sub(one, template)


class Message:
    """A log message naming arguments as placeholders; a command's log handler spells them as flags."""

    def __init__(self, template: str) -> None:
        self.template = template

    def __str__(self) -> str:
        return _render(self.template, None)

    def for_cli(self, flags: Mapping[str, str] | None = None) -> str:
        return _render(self.template, flags or {})


class SHViTError(ValueError):
    """The one root of the toolkit's errors (model, calibration, export, parity); ``argument`` names the culprit when one is."""

    templated: ClassVar[bool] = True
    """False for errors whose messages name no argument (paths and figures are shown as they are)."""

    def __init__(self, message: str = "", *, argument: str | None = None) -> None:
        self.template = message
        self.argument = argument
        super().__init__(_render(message, None) if self.templated else message)

    def for_cli(self, flags: Mapping[str, str] | None = None) -> str:
        """The message with each argument spelled as its command-line flag (``flags`` maps the exceptions)."""
        return _render(self.template, flags or {}) if self.templated else self.template


class WeightsError(SHViTError):
    """A checkpoint that cannot be read, does not fit, or cannot be downloaded."""
