"""Pixel-input form shared by every exporter: uint8-range RGB in, ImageNet normalisation baked in."""
from __future__ import annotations

import copy

import torch
from torch import nn

from shvit.config import IMAGENET_MEAN, IMAGENET_STD


class PixelInput(nn.Module):
    """``model((x / 255 - mean) / std)`` as ``conv'(x - 255 mean)`` with ``1 / (255 std)`` in the stem conv.

    The mean cannot go into the stem's bias: that conv zero-pads, so border outputs would differ.
    Subtracting it first keeps the function exact; the scale folds into the weights exactly.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        model = copy.deepcopy(model)
        stem = model.patch_embed[0]
        if not isinstance(stem, nn.Conv2d):
            raise TypeError("PixelInput needs a deploy-mode model (call shvit.reparameterize first)")
        std = torch.tensor(IMAGENET_STD, dtype=stem.weight.dtype)
        with torch.no_grad():
            stem.weight.mul_((1.0 / (255.0 * std))[None, :, None, None])
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN, dtype=stem.weight.dtype).mul(255.0)[None, :, None, None])
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels - self.pixel_mean)


def normalize_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """Reference normalisation of NCHW 0-255 pixels, for checking baked-in front ends."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=pixels.dtype)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=pixels.dtype)[None, :, None, None]
    return (pixels / 255.0 - mean) / std
