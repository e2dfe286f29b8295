"""Calibration and evaluation images with SHViT's exact eval preprocessing.

One preprocessing path for the whole project: int8 calibration (Core ML W8A8,
TFLite int8) and the parity checker both read images through this package.
"""

from __future__ import annotations

from .cache import CACHE_ENV_VAR, default_cache_dir
from .dataset import CLASS_NAMES, make_class_dataset, write_dataset
from .errors import CalibError
from .folder import IMAGE_EXTENSIONS, MAX_PIXELS, ImageSet, load_folder, scan_folder
from .preprocess import (
    CROP_PCT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PREPROCESS_VERSION,
    crop_origin,
    normalize,
    resized_size,
    to_pixels,
    to_rgb,
)
from .synthetic import synthetic_images

__all__ = [
    "CACHE_ENV_VAR",
    "CLASS_NAMES",
    "CROP_PCT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "PREPROCESS_VERSION",
    "CalibError",
    "ImageSet",
    "crop_origin",
    "default_cache_dir",
    "load_folder",
    "make_class_dataset",
    "normalize",
    "resized_size",
    "scan_folder",
    "synthetic_images",
    "to_pixels",
    "to_rgb",
    "write_dataset",
]
