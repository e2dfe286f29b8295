"""Pixel-input form shared by every exporter: uint8-range RGB in, the variant's normalisation baked in."""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn

from shvit.config import Preprocessing
from shvit.model import SHViT


def pixel_scaled(model: SHViT, preprocessing: Preprocessing, *, front_end: str) -> SHViT:
    """A copy of deploy-mode ``model`` taking mean-subtracted 0-255 pixels: ``1 / (255 std)`` in the stem weights.

    Exact (a scale commutes with the convolution, zero padding included); every pixel front end
    (:class:`PixelInput`, Core ML's image input) starts from it. ``front_end`` names the caller in errors.
    """
    model = copy.deepcopy(model).eval()
    stem = model.patch_embed[0]
    if not isinstance(stem, nn.Conv2d) or getattr(model, "head_dist", None) is not None:
        raise TypeError(f"{front_end} needs a deploy-mode model (call shvit.reparameterize first)")
    std = torch.tensor(preprocessing.std, dtype=stem.weight.dtype)
    with torch.no_grad():
        stem.weight.mul_((1.0 / (255.0 * std))[None, :, None, None])
    return model


class PixelInput(nn.Module):
    """``model((x / 255 - mean) / std)`` as ``conv'(x - 255 mean)`` with ``1 / (255 std)`` in the stem conv.

    The mean cannot go into the stem's bias: that conv zero-pads, so border outputs would differ.
    Subtracting it first keeps the function exact; the scale folds into the weights exactly.
    ``preprocessing`` defaults to the model's own (``model.config.preprocessing``).
    """

    pixel_mean: torch.Tensor

    def __init__(self, model: SHViT, *, preprocessing: Preprocessing | None = None) -> None:
        super().__init__()
        preprocessing = preprocessing or model.config.preprocessing
        model = pixel_scaled(model, preprocessing, front_end="PixelInput")
        dtype = cast(nn.Conv2d, model.patch_embed[0]).weight.dtype  # pixel_scaled checked the stem is a Conv2d
        self.register_buffer("pixel_mean", torch.tensor(preprocessing.pixel_mean, dtype=dtype)[None, :, None, None])
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels - self.pixel_mean)
