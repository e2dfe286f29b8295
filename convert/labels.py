"""Class labels shipped inside exported models: ImageNet-1k by default, ``--labels FILE`` for fine-tunes."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from convert.errors import ConvertError


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in training index order (the two duplicate names made unique)."""
    text = resources.files("convert").joinpath("data/imagenet_labels.txt").read_text(encoding="utf-8")
    return text.splitlines()


def read_labels(path: Path, *, num_classes: int) -> list[str]:
    """One label per line, exactly ``num_classes`` of them, none blank, none repeated."""
    if not path.is_file():
        raise ConvertError(f"labels file {path} does not exist or is not a file: pass a text file with one label per line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConvertError(f"labels file {path} is not UTF-8 text: save it as UTF-8, one label per line") from None
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if blank:
        raise ConvertError(f"labels file {path} has blank lines (line {blank[0]}): remove them, one label per line")
    labels = [line.strip() for line in lines]
    if len(labels) != num_classes:
        raise ConvertError(f"labels file {path} has {len(labels)} labels but the model has {num_classes} classes: give one label per class")
    seen: set[str] = set()
    for i, label in enumerate(labels):
        if label in seen:
            raise ConvertError(f"labels file {path} repeats {label!r} (line {i + 1}): classifier labels must be unique")
        seen.add(label)
    return labels
