"""A TFLite-friendly, numerically equivalent form of the deploy model (exporters own such forms).

onnx2tf turns NCHW into NHWC and inserts a TRANSPOSE wherever an op's meaning depends on an axis
order it cannot track, lowers unequal splits to SPLIT_V (which XNNPACK does not delegate) and,
after some residual additions, depthwise convolutions to grouped CONV_2D. Three rewrites avoid all
of that (see each class): the attention written channels-last with one RESHAPE per block and
every slice on the channel axis; residual additions as subtractions of a negated branch; the
global pool over a channels-last view. The GroupNorm is spelled out with SUB/MUL/MEAN/RSQRT, since
the SQUARED_DIFFERENCE that a fused variance lowers to aborts the int8 interpreter.
"""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn

from shvit.layers import FFN, Residual, SHSADeploy
from shvit.model import SHViT


class SHSATokens(SHSADeploy):
    """:class:`SHSADeploy` channels-last with a decomposed GroupNorm (same weights, same function).

    Scores are ``q (B, H, W, qk) @ kᵀ (B, 1, qk, N)`` → ``(B, H, W, N)``, softmax over the N keys,
    then ``@ v (B, 1, N, p)`` → ``(B, H, W, p)``: the batched matmuls broadcast over H, so the
    output needs no reshape back, and keys and values share the one reshape.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        qk, p = self.qk_dim, self.pdim
        x1, x2 = x[:, :p], x[:, p:]
        centred = x1 - x1.mean((1, 2, 3), keepdim=True)
        var = (centred * centred).mean((1, 2, 3), keepdim=True)
        qkv = self.qkv(centred * torch.rsqrt(var + self.eps)).permute(0, 2, 3, 1)
        q = qkv[..., :qk]
        kv = qkv[..., qk:].reshape(b, 1, h * w, qk + p)
        k, v = kv[..., :qk], kv[..., qk:]
        attn = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        x1 = (attn @ v).permute(0, 3, 1, 2)
        return self.proj(torch.cat([x1, x2], dim=1))


class SHViTChannelsLastPool(SHViT):
    """Deploy :class:`SHViT` whose global pool averages a channels-last view (NHWC's own layout).

    A mean over (2, 3) of an NCHW tensor makes onnx2tf transpose back to NCHW before the MEAN.
    """

    def global_pool(self, features: torch.Tensor) -> torch.Tensor:
        return features.permute(0, 2, 3, 1).mean((1, 2))


class SubtractNegated(nn.Module):
    """``x + m(x)`` computed as ``x - m'(x)`` where ``m'`` is ``m`` with its last convolution negated.

    Negation is exact in floating point, so this is the same function bit for bit. onnx2tf 1.29's
    Add converter compares its NHWC result against the ONNX (NCHW) shape and, finding them
    different, recomputes the sum in NCHW; the next depthwise convolution then sees an NCHW-shaped
    input and is emitted as a grouped CONV_2D instead of DEPTHWISE_CONV_2D. Sub has no such path.
    """

    def __init__(self, residual: Residual) -> None:
        super().__init__()
        self.m = copy.deepcopy(residual.m)
        last = _last_conv(self.m)
        with torch.no_grad():
            last.weight.neg_()
            if last.bias is not None:
                last.bias.neg_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.m(x)


def _last_conv(module: nn.Module) -> nn.Conv2d:
    # Deploy mode: FFN.pw2 and the last layer of SHSADeploy.proj (a Sequential) are fused Conv2dBNs, plain Conv2ds.
    if isinstance(module, FFN):
        return cast(nn.Conv2d, module.pw2)
    if isinstance(module, SHSADeploy):
        return cast(nn.Conv2d, cast(nn.Sequential, module.proj)[-1])
    raise TypeError(f"no output convolution known for {type(module).__name__}")


def _recast(module: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """The same parameters and children under a subclass with another ``forward``."""
    new = cls.__new__(cls)
    new.__dict__ = module.__dict__.copy()
    return new


def tflite_friendly(pixel_model: nn.Module) -> nn.Module:
    """A copy of ``pixel_model`` (a :class:`shvit.PixelInput`) in the form described above."""
    return _rewrite(copy.deepcopy(pixel_model).eval())


def _rewrite(module: nn.Module) -> nn.Module:
    if type(module) is Residual and isinstance(module.m, (FFN, SHSADeploy)):
        module = SubtractNegated(module)
    elif type(module) is SHSADeploy:
        module = _recast(module, SHSATokens)
    elif type(module) is SHViT:
        if module.head_dist is not None:
            raise ValueError("tflite_friendly needs a deploy-mode model (distillation heads fused)")
        module = _recast(module, SHViTChannelsLastPool)
    for name, child in list(module.named_children()):
        setattr(module, name, _rewrite(child))
    return module.eval()
