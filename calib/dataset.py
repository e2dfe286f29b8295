"""A generated, learnable multi-class image set and an ImageNet-val style writer.

Tests need a model that actually classifies (accuracy parity between PyTorch
and an exported model means nothing on a random network) without shipping
weights or photos. Each class is a distinct shape or texture; colours,
position, scale, rotation, background and noise vary so the task is not
trivial, yet a tiny network learns it at 64x64 in a few hundred CPU steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .synthetic import pink_noise

Coords = tuple[np.ndarray, np.ndarray]
Distance = Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]

_FORMATS: dict[str, tuple[str, str, dict[str, object]]] = {
    "png": ("PNG", ".png", {}),
    "jpeg": ("JPEG", ".jpg", {"quality": 95}),
    "jpg": ("JPEG", ".jpg", {"quality": 95}),
    "webp": ("WEBP", ".webp", {"quality": 95}),
    "bmp": ("BMP", ".bmp", {}),
    "tiff": ("TIFF", ".tif", {}),
    "tif": ("TIFF", ".tif", {}),
}


def _rotate(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, max_degrees: float) -> Coords:
    angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees))
    cos, sin = np.cos(angle), np.sin(angle)
    return x * cos + y * sin, -x * sin + y * cos


def _centred(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> Coords:
    cx, cy = rng.uniform(-0.2, 0.2, 2)
    return x - cx, y - cy


def _circle(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = _centred(rng, x, y)
    return np.hypot(x, y) - rng.uniform(0.45, 0.7)


def _square(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = _rotate(rng, *_centred(rng, x, y), 15)
    return np.maximum(np.abs(x), np.abs(y)) - rng.uniform(0.4, 0.6)


def _triangle(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = _rotate(rng, *_centred(rng, x, y), 25)
    inradius = rng.uniform(0.28, 0.38)
    normals = [np.pi / 2 + k * 2 * np.pi / 3 for k in range(3)]
    return np.max([x * np.cos(a) - y * np.sin(a) - inradius for a in normals], axis=0)


def _stripes(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, _ = _rotate(rng, x, y, 90)
    period = rng.uniform(0.25, 0.45)
    return np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi)) * period / (2 * np.pi)


def _checker(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = _rotate(rng, x, y, 15)
    period = rng.uniform(0.35, 0.6)
    phase = rng.uniform(0, 2 * np.pi, 2)
    product = np.sin(2 * np.pi * x / period + phase[0]) * np.sin(2 * np.pi * y / period + phase[1])
    return product * period / (2 * np.pi)


def _ring(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = _centred(rng, x, y)
    return np.abs(np.hypot(x, y) - rng.uniform(0.38, 0.55)) - rng.uniform(0.07, 0.12)


def _cross(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = _rotate(rng, *_centred(rng, x, y), 20)
    arm, half_width = rng.uniform(0.4, 0.6), rng.uniform(0.08, 0.14)
    horizontal = np.maximum(np.abs(x) - arm, np.abs(y) - half_width)
    vertical = np.maximum(np.abs(x) - half_width, np.abs(y) - arm)
    return np.minimum(horizontal, vertical)


def _dots(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    spacing = rng.uniform(0.45, 0.6)
    radius = rng.uniform(0.07, 0.11)
    offset = rng.uniform(-spacing / 2, spacing / 2, 2)
    centres = np.arange(-1.5, 1.5 + spacing, spacing)
    distance = np.full(x.shape, np.inf)
    for cx in centres + offset[0]:
        for cy in centres + offset[1]:
            jx, jy = rng.uniform(-0.06, 0.06, 2)
            distance = np.minimum(distance, np.hypot(x - cx - jx, y - cy - jy) - radius)
    return distance


_CLASSES: dict[str, Distance] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "stripes": _stripes,
    "checker": _checker,
    "ring": _ring,
    "cross": _cross,
    "dots": _dots,
}
CLASS_NAMES: tuple[str, ...] = tuple(_CLASSES)


def _luminance(colour: np.ndarray) -> float:
    return float(colour @ np.array([0.299, 0.587, 0.114]))


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background and foreground colours far enough apart in brightness to be seen."""
    while True:
        background, foreground = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        if abs(_luminance(background) - _luminance(foreground)) >= 0.3:
            return background, foreground


def _render(rng: np.random.Generator, distance: Distance, size: int) -> np.ndarray:
    centres = (np.arange(size) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(centres, centres, indexing="ij")
    pixel = 2.0 / size
    mask = np.clip(0.5 - distance(rng, x, y) / pixel, 0.0, 1.0)[..., None]
    background, foreground = _colours(rng)
    texture = pink_noise(rng, size, 2, exponent=1.2)
    tilt = rng.uniform(-0.1, 0.1, 3) * x[..., None] + rng.uniform(-0.1, 0.1, 3) * y[..., None]
    back = background + tilt + rng.uniform(0.02, 0.07) * texture[0][..., None]
    front = foreground + rng.uniform(0.0, 0.04) * texture[1][..., None]
    image = back * (1 - mask) + front * mask
    image = (image - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.08, 0.08)
    image = image + rng.normal(0, rng.uniform(0.01, 0.04), image.shape)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def make_class_dataset(n_per_class: int, size: int, *, seed: int = 0, num_classes: int = 8) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(pixels (N, size, size, 3) uint8, labels (N,) int64, class names), N = n_per_class * num_classes.

    Labels cycle 0, 1, ..., num_classes - 1 so every prefix is balanced.
    """
    if not 1 <= num_classes <= len(_CLASSES):
        raise ValueError(f"num_classes must be between 1 and {len(_CLASSES)}, got {num_classes}")
    if n_per_class < 0 or size < 8:
        raise ValueError(f"need n_per_class >= 0 and size >= 8, got n_per_class={n_per_class}, size={size}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    names = list(CLASS_NAMES[:num_classes])
    total = n_per_class * num_classes
    labels = np.arange(total, dtype=np.int64) % num_classes
    pixels = np.empty((total, size, size, 3), dtype=np.uint8)
    for index, label in enumerate(labels):
        rng = np.random.default_rng([seed, index])
        pixels[index] = _render(rng, _CLASSES[names[label]], size)
    return pixels, labels, names


def write_dataset(
    root: Path | str,
    pixels: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    *,
    fmt: str = "png",
) -> list[Path]:
    """Write one sub-folder per class (ImageNet-val layout) and return the file paths in input order."""
    key = fmt.lower().lstrip(".")
    if key not in _FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; use one of {', '.join(sorted(_FORMATS))}")
    array = np.asarray(pixels)
    label_array = np.asarray(labels)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"pixels must be uint8 shaped (N, H, W, 3), got {array.dtype} {array.shape}")
    if label_array.shape != (len(array),):
        raise ValueError(f"need one label per image: {len(array)} images, labels shaped {label_array.shape}")
    names = [str(name) for name in class_names]
    for name in names:
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            raise ValueError(f"class name {name!r} cannot be a folder name (empty, hidden or with a separator)")
    if len(set(names)) != len(names):
        raise ValueError("class names must be unique")
    if label_array.size and (label_array.min() < 0 or label_array.max() >= len(names)):
        raise ValueError(f"labels must lie in [0, {len(names)}), got {label_array.min()}..{label_array.max()}")
    plugin, suffix, options = _FORMATS[key]
    base = Path(root)
    written: list[Path] = []
    for index, (image, label) in enumerate(zip(array, label_array)):
        folder = base / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{names[int(label)]}_{index:06d}{suffix}"
        Image.fromarray(image).save(target, plugin, **options)
        written.append(target)
    return written
