"""Template rendering: ``@@NAME@@`` placeholders, because Swift and Kotlin both use ``$`` themselves."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from pathlib import Path

PLACEHOLDER_MARK = "@@"
TEMPLATES_DIR = Path(__file__).with_name("templates")


class SourceTemplate(string.Template):
    """``string.Template`` with ``@@NAME@@`` fields; a stray ``@@`` is an error, never silently kept."""

    delimiter = PLACEHOLDER_MARK
    flags = re.NOFLAG  # string.Template ignores case by default; field names are upper case only
    # A pattern string is how the docs say to override it (string.Template compiles it with ``flags``);
    # typeshed types the attribute as the compiled Pattern it becomes, hence the ignore below.
    pattern = r"""
    @@(?:
      (?P<escaped>(?!))                 |
      (?P<named>[A-Z][A-Z0-9_]*)@@      |
      (?P<braced>(?!))                  |
      (?P<invalid>)
    )
    """  # type: ignore[assignment]


def template_text(platform: str, name: str) -> str:
    """The packaged template ``templates/<platform>/<name>.tmpl``."""
    return (TEMPLATES_DIR / platform / f"{name}.tmpl").read_text(encoding="utf-8")


def render(platform: str, name: str, values: dict[str, str]) -> str:
    """Fill one template; every field must be given (KeyError otherwise: a generator bug, not user input)."""
    return SourceTemplate(template_text(platform, name)).substitute(values)


def write_rendered(root: Path, files: dict[str, str], platform: str, values: dict[str, str]) -> list[Path]:
    """Render each ``template name -> relative output path`` pair under ``root``."""
    written = []
    for name, relative in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(platform, name, values), encoding="utf-8")
        written.append(target)
    return written


_SIMPLE_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string_literal(text: str, *, escaped: str, unicode: Callable[[int], str]) -> str:
    out = []
    for ch in text:
        if ch in escaped:
            out.append("\\" + ch)
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(unicode(ord(ch)))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def swift_string(text: str) -> str:
    """A Swift string literal for ``text``."""
    return _string_literal(text, escaped='"\\', unicode=lambda code: f"\\u{{{code:x}}}")


def kotlin_string(text: str) -> str:
    """A Kotlin string literal for ``text`` (``$`` escaped: Kotlin would interpolate it)."""
    return _string_literal(text, escaped='"\\$', unicode=lambda code: f"\\u{code:04x}")


def float_literal(value: float) -> str:
    """A float literal both Swift and Kotlin accept (``repr`` keeps every digit; never ``1e-05`` without a dot)."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        mantissa, exponent = text.lower().split("e")
        if "." not in mantissa:
            mantissa += ".0"
        text = f"{mantissa}e{exponent}"
    return text
