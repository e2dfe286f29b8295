"""Class labels shipped inside exported models: ImageNet-1k by default, a file or a list for fine-tunes."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from convert.errors import ArgumentError


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in training index order (the two duplicate names made unique)."""
    text = resources.files("convert").joinpath("data/imagenet_labels.txt").read_text(encoding="utf-8")
    return text.splitlines()


def default_labels(num_classes: int) -> list[str]:
    return imagenet_labels() if num_classes == 1000 else [f"class_{i}" for i in range(num_classes)]


class LabelTextError(ValueError):
    """Text that is not one label per line: ``blank_line`` is the first blank line (1-based), None if not UTF-8."""

    def __init__(self, blank_line: int | None) -> None:
        super().__init__("not UTF-8 text" if blank_line is None else f"blank line {blank_line}")
        self.blank_line = blank_line


def label_lines(raw: bytes) -> list[str]:
    """Labels from a label file's bytes, one per line: trailing blank lines dropped, each stripped.

    Every reader (``labels``, label files beside or packed in a model) parses with this, so they
    accept the same files; each phrases :class:`LabelTextError` for its own user.
    """
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise LabelTextError(None) from None
    while lines and not lines[-1].strip():
        lines.pop()
    blank = next((i + 1 for i, line in enumerate(lines) if not line.strip()), None)
    if blank is not None:
        raise LabelTextError(blank)
    return [line.strip() for line in lines]


def read_labels(path: Path, *, num_classes: int) -> list[str]:
    """One label per line, exactly ``num_classes`` of them, none blank, none repeated."""
    if not path.is_file():
        raise ArgumentError(
            f"labels file {path} does not exist or is not a file: pass a text file with one label per line", argument="labels"
        )
    try:
        labels = label_lines(path.read_bytes())
    except LabelTextError as exc:
        if exc.blank_line is None:
            raise ArgumentError(f"labels file {path} is not UTF-8 text: save it as UTF-8, one label per line", argument="labels") from None
        raise ArgumentError(
            f"labels file {path} has blank lines (line {exc.blank_line}): remove them, one label per line", argument="labels"
        ) from None
    return _checked(labels, num_classes=num_classes, what=f"labels file {path}", where="line")


def validate_labels(labels: list[str], *, num_classes: int) -> list[str]:
    """A labels list given from Python: one non-empty, unique string per class."""
    if any(not isinstance(label, str) or not label.strip() for label in labels):
        raise ArgumentError("labels must be non-empty strings, one per class", argument="labels")
    return _checked([label.strip() for label in labels], num_classes=num_classes, what="labels", where="entry")


def _checked(labels: list[str], *, num_classes: int, what: str, where: str) -> list[str]:
    if len(labels) != num_classes:
        raise ArgumentError(
            f"{what} has {len(labels)} labels but the model has {num_classes} classes: give one label per class", argument="labels"
        )
    seen: set[str] = set()
    for i, label in enumerate(labels):
        if label in seen:
            raise ArgumentError(f"{what} repeats {label!r} ({where} {i + 1}): classifier labels must be unique", argument="labels")
        seen.add(label)
    return labels
