"""The images every check runs on: the user's photos (with their classes, when known) or generated ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.errors import ArgumentError, UsageError
from convert.validate.accuracy import GroundTruth, from_folders, from_label_map

DEFAULT_COUNT = 128
SYNTHETIC_HINT = "(no images given: a folder of your own photos makes a truer check)"
"""Follows the generated images' description."""


def check_image_options(*, images: object, labels_from_folders: bool, labels_file: object) -> None:
    """Accuracy needs labelled photos: a class source without a folder, or two of them, is a usage error."""
    if (labels_from_folders or labels_file) and images is None:
        raise UsageError("the images' classes were given, but no folder of images", argument="images")
    if labels_from_folders and labels_file is not None:
        raise UsageError("the classes come from the sub-folders or from a file, not both", argument="labels_file")


def check_image_folders(folders: Mapping[str, Path | None]) -> None:
    """Each given image folder (argument name → folder) exists, can be listed and holds image files: a listing, no decoding."""
    import calib

    for argument, folder in folders.items():
        if folder is None:
            continue
        if not Path(folder).is_dir():
            what = "is a file" if Path(folder).exists() else "does not exist"
            raise ArgumentError(f"folder {folder} {what}: pass a folder of images", argument=argument)
        try:
            calib.scan_folder(folder)
        except calib.CalibError as exc:
            raise ArgumentError(exc.message, argument=argument) from None


@dataclass
class EvalImages:
    """The pixels every runtime sees, where they came from, and their classes when known."""

    pixels: np.ndarray
    description: str
    source: str
    folder: Path | None = None
    truth: GroundTruth | None = None


def load_images(
    images_dir: Path | None,
    *,
    size: int,
    count: int,
    class_names: Sequence[str],
    labels_from_folders: bool = False,
    labels_file: Path | None = None,
    sorted_order: bool = False,
    progress: bool = False,
    quiet: bool = False,
) -> EvalImages:
    """User photos (sampled with a fixed seed, ``count`` 0 = all) or, without a folder, generated ones.

    ``quiet`` drops the warnings of bad files (when the same folder was already loaded once).
    """
    import calib

    if images_dir is None:
        n = count or DEFAULT_COUNT
        description = f"{n} generated natural-looking images {SYNTHETIC_HINT}"
        return EvalImages(calib.synthetic_images(n, size, seed=0), description, "synthetic")
    found = calib.load_folder(
        images_dir,
        size=size,
        count=count or None,
        seed=0,
        progress=progress,
        warn=(lambda _message: None) if quiet else None,
        requested=False,
    )
    truth = None
    if labels_from_folders:
        truth = from_folders(found.labels, found.class_names, folder=images_dir, class_names=class_names, sorted_order=sorted_order)
    elif labels_file is not None:
        truth = from_label_map(labels_file, found.paths, root=images_dir, class_names=class_names, sorted_order=sorted_order)
    return EvalImages(found.pixels, f"{len(found.pixels)} images from {images_dir}", "folder", images_dir, truth)
