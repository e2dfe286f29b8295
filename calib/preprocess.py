"""SHViT evaluation preprocessing, split at the uint8 pixel boundary.

Exported models take the resized and cropped uint8 pixels with the
normalisation baked in, while PyTorch takes normalised float tensors, so the
pipeline is two public steps (`to_pixels`, `normalize`) that together equal
timm/torchvision's eval transform: Resize(int(size / crop_fraction), interpolation),
CenterCrop(size), ToTensor, Normalize(mean, std), all read from
:class:`shvit.config.Preprocessing`; `normalize` is :func:`shvit.preprocess.normalize`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from shvit.config import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from shvit.preprocess import normalize

__all__ = [
    "CROP_PCT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PREPROCESS_VERSION",
    "crop_origin",
    "normalize",
    "resized_size",
    "to_pixels",
    "to_rgb",
]

CROP_PCT: float = Preprocessing().crop_fraction
"""``Preprocessing().crop_fraction``, under the name timm's configs use."""

PREPROCESS_VERSION = 1
"""Bump whenever the pixels produced for a given file could change; cache keys include it."""

MAX_RESIZED_PIXELS = 1 << 26
"""Refuse resizes larger than this: only absurd aspect ratios get here, and they would exhaust memory."""

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def _upright(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        # Malformed metadata is common in the wild and must not cost the picture.
        return img


def _gray_to_uint8(img: Image.Image) -> np.ndarray:
    """Scale high-depth grayscale by its format's range, never by clipping.

    16-bit modes keep their high byte. "I" (32-bit int) and "F" (float) carry no
    nominal range, so the smallest conventional one that holds the data is used
    (for floats [0, 1] first, then 8-bit, then 16-bit) and anything else is
    stretched to fill 0-255.
    """
    if img.mode in _SIXTEEN_BIT_MODES:
        return (np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8)
    source = img if img.mode in ("I", "F") else img.convert("I")
    data = np.nan_to_num(np.asarray(source, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if img.mode == "F" and low >= 0.0 and high <= 1.0:
        return np.rint(data * 255.0).astype(np.uint8)
    if low >= 0.0 and high <= 255.0:
        return np.rint(data).astype(np.uint8)
    if low >= 0.0 and high <= 65535.0:
        return np.floor(data / 256.0).astype(np.uint8)
    return np.rint((data - low) * (255.0 / max(high - low, 1e-12))).astype(np.uint8)


def _over_white(img: Image.Image) -> Image.Image:
    rgba = (img.convert("LA") if img.mode == "La" else img).convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def to_rgb(img: Image.Image) -> Image.Image:
    """Return an upright 8-bit RGB version of any Pillow image.

    Transparent pixels become white (what viewers show, and what a photo of
    the object would look like) and high-depth grayscale is rescaled rather
    than clipped, so odd files in a calibration folder still look like photos.
    """
    img.load()
    img = _upright(img)
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in ("I", "F") or mode.startswith("I;"):
        gray = _gray_to_uint8(img)
        return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in _ALPHA_MODES or "transparency" in img.info:
        return _over_white(img)
    try:
        return img.convert("RGB")
    except ValueError:
        return _lab_to_rgb(img)


def _lab_to_rgb(img: Image.Image) -> Image.Image:
    """Colour-managed fallback for modes Pillow cannot convert directly."""
    from PIL import ImageCms

    if img.mode != "LAB":
        raise ValueError(f"unsupported image mode {img.mode}")
    transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
    rgb = ImageCms.applyTransform(img, transform)
    if rgb is None:  # only an inPlace transform returns None
        raise RuntimeError("ImageCms.applyTransform returned no image")
    return rgb


def resized_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(width, height) after torchvision's Resize(short) on a (width, height) image."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def crop_origin(width: int, height: int, size: int) -> tuple[int, int]:
    """(left, top) of torchvision's CenterCrop(size), including its rounding of halves."""
    return round((width - size) / 2.0), round((height - size) / 2.0)


def to_pixels(img: Image.Image, size: int) -> np.ndarray:
    """Resize and centre-crop to the uint8 (size, size, 3) pixels an exported model takes."""
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    preprocessing = Preprocessing(input_size=size)
    rgb = to_rgb(img)
    new_w, new_h = resized_size(rgb.width, rgb.height, preprocessing.resize_size)
    if new_w * new_h > MAX_RESIZED_PIXELS:
        raise ValueError(f"extreme aspect ratio {rgb.width}x{rgb.height}: resizing to {new_w}x{new_h} would exhaust memory")
    resized = rgb.resize((new_w, new_h), Image.Resampling[preprocessing.interpolation.upper()])
    left, top = crop_origin(new_w, new_h, size)
    return np.array(np.asarray(resized)[top : top + size, left : left + size], dtype=np.uint8)
