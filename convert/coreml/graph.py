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

import copy

import torch
import torch.nn.functional as F
from torch import nn

from shvit.config import IMAGENET_MEAN, IMAGENET_STD
from shvit.layers import SHSADeploy

PIXEL_BIAS: tuple[float, float, float] = tuple(-255.0 * m for m in IMAGENET_MEAN)  # type: ignore[assignment]
"""Per-channel bias of the ``ImageType`` front end (its scale is 1)."""


class CoreMLSHSA(SHSADeploy):
    """:class:`SHSADeploy` with a Core ML-friendly forward (same parameters, same function)."""

    @classmethod
    def from_deploy(cls, block: SHSADeploy) -> "CoreMLSHSA":
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
    """Mean-subtracted pixels (N, 3, H, W) → (probabilities, logits), for ``ct.convert``."""

    def __init__(self, deploy: nn.Module) -> None:
        super().__init__()
        model = copy.deepcopy(deploy).eval()
        stem = model.patch_embed[0]
        if not isinstance(stem, nn.Conv2d) or getattr(model, "head_dist", None) is not None:
            raise TypeError("CoreMLClassifierGraph needs a deploy-mode model (call shvit.reparameterize first)")
        std = torch.tensor(IMAGENET_STD, dtype=stem.weight.dtype)
        with torch.no_grad():
            stem.weight.mul_((1.0 / (255.0 * std))[None, :, None, None])
        _replace_attention(model)
        self.model = model

    def forward(self, centered_pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        features = m.forward_features(centered_pixels).mean((2, 3))
        logits = m.head(features)
        return logits.softmax(dim=-1), logits


def _replace_attention(module: nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is SHSADeploy:
            setattr(module, name, CoreMLSHSA.from_deploy(child))
        else:
            _replace_attention(child)

