"""Generated natural-looking images for when the user has no photo folder.

Int8 calibration derives activation ranges from what the model sees; uniform
noise or flat colours give ranges nothing like a photo's. These images copy
the gross statistics of photos instead: smooth illumination gradients, a 1/f
amplitude spectrum, object-like blurred shapes with edges, varied exposure.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _rng(seed: int, index: int) -> np.random.Generator:
    """One stream per image, so image i does not depend on how many were asked for."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return np.random.default_rng([seed, index])


def pink_noise(rng: np.random.Generator, size: int, channels: int, *, exponent: float) -> np.ndarray:
    """(channels, size, size) noise with amplitude ~ 1/f**exponent, zero mean, unit std."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    shape = (channels, size, size // 2 + 1)
    spectrum = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / radius**exponent
    spectrum[:, 0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(size, size))
    return field / (field.std(axis=(1, 2), keepdims=True) + 1e-12)


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth two-colour illumination across the frame, at a random angle."""
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    t = (xs - 0.5) * np.cos(angle) + (ys - 0.5) * np.sin(angle) + 0.5
    t = np.clip(t, 0, 1)[..., None]
    start, end = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    return start * (1 - t) + end * t


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random ellipse, rectangle or polygon, blurred by a random amount, in [0, 1]."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = rng.uniform(-0.1, 1.1, 2) * size
    rx, ry = rng.uniform(0.05, 0.45, 2) * size
    kind = rng.integers(3)
    if kind == 0:
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    elif kind == 1:
        draw.rectangle((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    else:
        corners = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
        radii = rng.uniform(0.4, 1.0, corners)
        points = [(cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)) for r, a in zip(radii, angles)]
        draw.polygon(points, fill=255)
    radius = float(rng.choice([0.0, rng.uniform(0.3, 1.5), rng.uniform(1.5, size / 20)]))
    if radius > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(mask, dtype=np.float64) / 255.0


def _natural_image(rng: np.random.Generator, size: int) -> np.ndarray:
    image = _gradient(rng, size)
    if rng.random() < 0.5:
        horizon = np.clip((np.arange(size)[:, None] - rng.uniform(0.2, 0.8) * size) / rng.uniform(0.5, 4), -1, 1)
        image = image + (horizon[..., None] + 1) / 2 * (rng.uniform(0, 1, 3) - image) * rng.uniform(0.3, 0.9)
    texture = pink_noise(rng, size, 3, exponent=rng.uniform(0.9, 1.5))
    luminance, chroma = texture[0], texture[1:]
    image = image + rng.uniform(0.05, 0.2) * luminance[..., None]
    image[..., 0] += 0.03 * chroma[0]
    image[..., 2] += 0.03 * chroma[1]
    for _ in range(int(rng.integers(2, 8))):
        mask = _shape_mask(rng, size)[..., None] * rng.uniform(0.6, 1.0)
        colour = rng.uniform(0, 1, 3)
        detail = 1 + rng.uniform(0.0, 0.25) * pink_noise(rng, size, 1, exponent=rng.uniform(0.8, 1.4))[0]
        image = image * (1 - mask) + (colour * detail[..., None]) * mask
    contrast, brightness = rng.uniform(0.6, 1.4), rng.uniform(-0.15, 0.15)
    image = (image - image.mean()) * contrast + image.mean() + brightness
    image = np.clip(image, 0, 1) ** rng.uniform(0.7, 1.4)
    image = image + rng.normal(0, rng.uniform(0.002, 0.02), image.shape)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def synthetic_images(n: int, size: int, *, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 photo-like images, identical for the same seed."""
    if n < 0 or size < 1:
        raise ValueError(f"need n >= 0 and size >= 1, got n={n}, size={size}")
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for index in range(n):
        out[index] = _natural_image(_rng(seed, index), size)
    return out
