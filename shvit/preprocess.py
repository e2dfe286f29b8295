"""The one implementation of SHViT's input normalisation, on uint8 pixels as images and exporters hold them.

Exported models take uint8-range RGB with the normalisation baked in, PyTorch takes normalised float
tensors; calib, the parity checks and the tests all turn the former into the latter through
:func:`normalize`, so a reference can never use a subtly different formula.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shvit.config import IMAGENET_MEAN, IMAGENET_STD


def normalize(pixels: np.ndarray, *, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """uint8 (H, W, 3) or (N, H, W, 3) pixels -> float32 (3, H, W) or (N, 3, H, W).

    Computed in float32 in the same order as ToTensor + Normalize so results
    match PyTorch bit for bit; filled channel by channel to avoid large temporaries.
    """
    array = np.asarray(pixels)
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ValueError(f"normalize expects uint8 pixels shaped (H, W, 3) or (N, H, W, 3), got {array.dtype} {array.shape}")
    mean32, std32 = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    batch = array[None] if array.ndim == 3 else array
    out = np.empty((batch.shape[0], 3, batch.shape[1], batch.shape[2]), dtype=np.float32)
    scale = np.float32(255.0)
    for channel in range(3):
        values = batch[..., channel].astype(np.float32) / scale
        out[:, channel] = (values - mean32[channel]) / std32[channel]
    return out[0] if array.ndim == 3 else out
