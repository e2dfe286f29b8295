"""The deploy model rewritten into the shapes Core ML's converter turns into the fewest MIL ops.

Every rewrite is numerically the deploy model's function (up to float rounding):
- single-head attention normalises with ``layer_norm`` over (C, H, W) and no affine: that is
  ``GroupNorm(1, C)`` exactly, and one MIL op instead of the converter's five-op decomposition
  (the affine and the attention scale were already folded into qkv by :mod:`shvit.layers`);
- the qkv tensor is reshaped to tokens once before its split, and the two attention matmuls
  carry their transposes as ``transpose_x``/``transpose_y`` flags rather than separate ops;
- the partial-channel cut is one ``split`` rather than two slices;
- the front end takes pixels with the mean already removed (``ImageType`` bias, applied by Core ML
  in fp32) and has ``1 / (255 std)`` folded into the stem weights, which is exact: the mean cannot
  go into the stem's bias because that conv zero-pads;
- the head returns softmax probabilities for the classifier and the logits feeding them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shvit.config import Preprocessing
from shvit.deploy import pixel_scaled
from shvit.layers import SHSADeploy
from shvit.model import SHViT


def pixel_bias(preprocessing: Preprocessing) -> tuple[float, float, float]:
    """Per-channel bias of the ``ImageType`` front end (its scale is 1): minus the mean in 0-255 pixels."""
    return tuple(-m for m in preprocessing.pixel_mean)  # type: ignore[return-value]


PIXEL_BIAS: tuple[float, float, float] = pixel_bias(Preprocessing())
"""The bias for the default preprocessing (every released variant's); a graph's own is ``.pixel_bias``."""


class CoreMLSHSA(SHSADeploy):
    """:class:`SHSADeploy` with a Core ML-friendly forward (same parameters, same function)."""

    @classmethod
    def from_deploy(cls, block: SHSADeploy) -> CoreMLSHSA:
        return cls(block.dim, block.qk_dim, block.pdim, eps=block.eps, qkv=block.qkv, proj=block.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x1, x2 = torch.split(x, [self.pdim, self.dim - self.pdim], dim=1)
        x1 = F.layer_norm(x1, x1.shape[1:], eps=self.eps)
        qkv = self.qkv(x1).reshape(b, 2 * self.qk_dim + self.pdim, h * w)
        q, k, v = torch.split(qkv, [self.qk_dim, self.qk_dim, self.pdim], dim=1)
        attn = torch.matmul(q.transpose(1, 2), k).softmax(dim=-1)
        x1 = torch.matmul(v, attn.transpose(1, 2)).reshape(b, self.pdim, h, w)
        return self.proj(torch.cat([x1, x2], dim=1))


class CoreMLClassifierGraph(nn.Module):
    """Mean-subtracted pixels (N, 3, H, W) → (probabilities, logits), for ``ct.convert``.

    ``preprocessing`` defaults to the model's own; the image input's bias must be ``self.pixel_bias``.
    """

    def __init__(self, deploy: SHViT, *, preprocessing: Preprocessing | None = None) -> None:
        super().__init__()
        preprocessing = preprocessing or deploy.config.preprocessing
        model = pixel_scaled(deploy, preprocessing, front_end="CoreMLClassifierGraph")
        _replace_attention(model)
        self.model = model
        self.pixel_bias = pixel_bias(preprocessing)

    def forward(self, centered_pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(centered_pixels)
        return logits.softmax(dim=-1), logits


def _replace_attention(module: nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is SHSADeploy:
            setattr(module, name, CoreMLSHSA.from_deploy(child))
        else:
            _replace_attention(child)
