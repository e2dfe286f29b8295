"""Ground-truth classes for evaluation images, and top-k accuracy of any set of logits.

Images get their class from their sub-folder (ImageNet-val layout) or from a labels file mapping
files to classes. Folder or file labels are matched to the model's class indices by name, by
integer index, or, for an ImageNet-1k head with exactly 1000 distinct labels (synset folders such
as ``n01440764``), by their sorted order, which is how ImageNet class indices are defined.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.errors import ConvertError

UNKNOWN = -1


@dataclass(frozen=True)
class GroundTruth:
    """One model class index per image (``UNKNOWN`` where the source names none), and how it was mapped."""

    labels: np.ndarray
    source: str
    mapping: str

    @property
    def known(self) -> int:
        return int(np.sum(self.labels != UNKNOWN))


@dataclass(frozen=True)
class Accuracy:
    top1: float
    top5: float
    images: int

    def as_dict(self) -> dict[str, float | int]:
        return {"top1": self.top1, "top5": self.top5, "images": self.images}


def class_ids(
    names: Sequence[str], *, universe: Sequence[str], class_names: Sequence[str], what: str, sorted_order: bool
) -> tuple[list[int], str]:
    """Model class index of each of ``names`` (drawn from ``universe``, every label the source defines).

    ``sorted_order`` allows the ImageNet convention; it would silently mislabel a custom head.
    """
    by_name = {name.strip().lower(): i for i, name in enumerate(class_names)}
    wanted = [name.strip() for name in names]
    if all(name.lower() in by_name for name in wanted):
        return [by_name[name.lower()] for name in wanted], f"{what} names matched to the model's class names"
    if all(name.isdigit() and int(name) < len(class_names) for name in wanted):
        return [int(name) for name in wanted], f"{what} names read as class indices"
    distinct = sorted({name.strip() for name in universe})
    if sorted_order and len(distinct) == len(class_names):
        rank = {name: i for i, name in enumerate(distinct)}
        return [rank[name] for name in wanted], f"{what} names taken in sorted order as class indices (ImageNet convention)"
    strangers = sorted({name for name in wanted if name.lower() not in by_name})[:3]
    raise ConvertError(
        f"{what} names {', '.join(strangers)} are neither the model's class names nor class indices, and there are "
        f"{len(distinct)} of them for {len(class_names)} classes: give the model's labels (a file with its class names, one per line), "
        "or name them by class index"
    )


def from_folders(
    labels: Sequence[int] | None, folder_names: Sequence[str] | None, *, folder: Path, class_names: Sequence[str], sorted_order: bool
) -> GroundTruth:
    """Classes from the images' sub-folders (``calib.ImageSet.labels`` / ``.class_names``)."""
    if labels is None or not folder_names:
        raise ConvertError(
            f"classes from sub-folders need one sub-folder per class in {folder}, but its images are not in class "
            "sub-folders: arrange them so, or give the classes as a labels file",
            argument="labels_from_folders",
        )
    ids, how = class_ids(folder_names, universe=folder_names, class_names=class_names, what="sub-folder", sorted_order=sorted_order)
    return GroundTruth(np.asarray([ids[i] for i in labels], dtype=np.int64), f"sub-folders of {folder}", how)


def read_label_map(path: Path) -> dict[str, str]:
    """``file,label`` / ``file<TAB>label`` / ``file label`` lines (extra columns ignored) → {file: label}."""
    if not path.is_file():
        raise ConvertError(f"labels file {path} does not exist or is not a file: pass a text/CSV file with one 'file label' pair per line")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConvertError(f"labels file {path} is not UTF-8 text: save it as UTF-8 with one 'file label' pair per line") from None
    mapping: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "," in line or "\t" in line:
            fields = next(csv.reader(io.StringIO(line), delimiter="\t" if "\t" in line else ","))
            file, rest = (fields[0].strip(), fields[1].strip()) if len(fields) > 1 else (fields[0].strip(), "")
        else:
            file, _, rest = line.partition(" ")
        label = rest.split()[0] if rest.split() else ""
        if file and label:
            mapping[file] = label
    if not mapping:
        raise ConvertError(f"labels file {path} has no 'file label' lines: write one image file and its class per line")
    return mapping


def from_label_map(path: Path, image_paths: Sequence[Path], *, root: Path, class_names: Sequence[str], sorted_order: bool) -> GroundTruth:
    """Classes from a labels file; images are matched by path relative to ``root``, file name, or name without suffix."""
    mapping = read_label_map(path)
    found: list[str | None] = []
    for image in image_paths:
        rel = image.relative_to(root).as_posix() if image.is_relative_to(root) else image.name
        found.append(next((mapping[key] for key in (rel, image.name, image.stem) if key in mapping), None))
    named = [label for label in found if label is not None]
    if not named:
        example = image_paths[0].name if image_paths else "a file name"
        raise ConvertError(f"labels file {path} names none of the images in {root} (looked for e.g. {example}): check it lists these files")
    ids, how = class_ids(named, universe=list(mapping.values()), class_names=class_names, what="labels-file", sorted_order=sorted_order)
    lookup = dict(zip(named, ids))
    labels = np.asarray([lookup[label] if label is not None else UNKNOWN for label in found], dtype=np.int64)
    return GroundTruth(labels, f"labels file {path}", how)


def accuracy(logits: np.ndarray, truth: GroundTruth) -> Accuracy:
    """Top-1 / top-5 accuracy over the images with a known class."""
    known = truth.labels != UNKNOWN
    scores, labels = np.asarray(logits)[known], truth.labels[known]
    if not len(labels):
        return Accuracy(float("nan"), float("nan"), 0)
    k = min(5, scores.shape[1])
    top = np.argsort(-scores, axis=1)[:, :k]
    return Accuracy(
        top1=float(np.mean(top[:, 0] == labels)),
        top5=float(np.mean((top == labels[:, None]).any(axis=1))),
        images=len(labels),
    )
