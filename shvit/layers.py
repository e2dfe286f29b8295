"""SHViT building blocks, named as in the paper and the released state dicts.

Every block that holds a BatchNorm has a ``fuse()`` returning its deploy-mode replacement, so
reparameterisation is a recursive walk (see :mod:`shvit.reparam`) rather than per-model code.
Child names (``c``, ``bn``, ``l``, ``m``, ``pw1`` ...) are the released checkpoints' keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

_Pair = tuple[int, int]
"""A Conv2d's kernel size, stride, padding or dilation, which torch's annotations widen to ``tuple[int, ...]``."""


def _bn_scale_shift(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel ``y = x * scale + shift`` that an eval-mode BatchNorm computes."""
    # Every BatchNorm built here tracks running statistics (track_running_stats=True), so they are tensors.
    running_mean, running_var = cast(torch.Tensor, bn.running_mean), cast(torch.Tensor, bn.running_var)
    scale = bn.weight / torch.sqrt(running_var + bn.eps)
    return scale, bn.bias - running_mean * scale


class Conv2dBN(nn.Sequential):
    """Conv2d without bias followed by BatchNorm2d (``Conv2d_BN`` in the official code)."""

    c: nn.Conv2d
    bn: nn.BatchNorm2d

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        *,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_chs))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        c, bn = self.c, self.bn
        scale, shift = _bn_scale_shift(bn)
        fused = nn.Conv2d(
            c.in_channels,
            c.out_channels,
            cast(_Pair, c.kernel_size),
            cast(_Pair, c.stride),
            cast("str | _Pair", c.padding),
            cast(_Pair, c.dilation),
            c.groups,
            bias=True,
            device=c.weight.device,
            dtype=c.weight.dtype,
        )
        fused.weight.copy_(c.weight * scale[:, None, None, None])
        cast(torch.Tensor, fused.bias).copy_(shift)  # built with bias=True
        return fused


class BNLinear(nn.Sequential):
    """BatchNorm1d then Linear (``BN_Linear``): the classification head."""

    bn: nn.BatchNorm1d
    l: nn.Linear  # noqa: E741 (the released checkpoints' key)

    def __init__(self, in_features: int, out_features: int, *, std: float = 0.02) -> None:
        super().__init__()
        self.add_module("bn", nn.BatchNorm1d(in_features))
        self.add_module("l", nn.Linear(in_features, out_features))
        nn.init.trunc_normal_(self.l.weight, std=std)
        nn.init.constant_(self.l.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        scale, shift = _bn_scale_shift(self.bn)
        lin = self.l
        fused = nn.Linear(lin.in_features, lin.out_features, device=lin.weight.device, dtype=lin.weight.dtype)
        fused.weight.copy_(lin.weight * scale[None, :])
        fused.bias.copy_(lin.bias + lin.weight @ shift)
        return fused


class Residual(nn.Module):
    """``x + m(x)``; around a 3x3 depthwise Conv2dBN it fuses into one conv (identity in the kernel centre)."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)

    @torch.no_grad()
    def fuse(self) -> nn.Module:
        if isinstance(self.m, Conv2dBN):
            conv = self.m.fuse()
            if conv.groups != conv.in_channels or conv.in_channels != conv.out_channels or conv.kernel_size != (3, 3):
                raise ValueError("only a residual around a 3x3 depthwise convolution can be folded into it")
            conv.weight[:, 0, 1, 1] += 1.0
            return conv
        return Residual(fuse_module(self.m))


class FFN(nn.Module):
    """Pointwise feed-forward: expand, ReLU, project (``pw2`` starts at zero so blocks start as identity)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.pw1 = Conv2dBN(dim, hidden)
        self.act = nn.ReLU()
        self.pw2 = Conv2dBN(hidden, dim, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))

    def fuse(self) -> nn.Module:
        return _fuse_children(self)


class SqueezeExcite(nn.Module):
    """Channel gate on the spatial mean (timm's SE with ``rd_ratio=0.25, rd_divisor=8``, no BN)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        reduced = max(8, int(channels * 0.25 + 4) // 8 * 8)
        self.fc1 = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class PatchMerging(nn.Module):
    """Stride-2 downsampling between stages: expand 4x, depthwise 3x3/2, SE, project."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        hidden = dim * 4
        self.conv1 = Conv2dBN(dim, hidden)
        self.act = nn.ReLU()
        self.conv2 = Conv2dBN(hidden, hidden, 3, 2, 1, groups=hidden)
        self.se = SqueezeExcite(hidden)
        self.conv3 = Conv2dBN(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.se(self.act(self.conv2(self.act(self.conv1(x))))))

    def fuse(self) -> nn.Module:
        return _fuse_children(self)


class SHSA(nn.Module):
    """Single-Head Self-Attention over the first ``pdim`` channels; the rest pass through untouched."""

    def __init__(self, dim: int, qk_dim: int, pdim: int) -> None:
        super().__init__()
        self.dim, self.qk_dim, self.pdim = dim, qk_dim, pdim
        self.scale = qk_dim**-0.5
        self.pre_norm = nn.GroupNorm(1, pdim)
        self.qkv = Conv2dBN(pdim, qk_dim * 2 + pdim)
        self.proj = nn.Sequential(nn.ReLU(), Conv2dBN(dim, dim, bn_weight_init=0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x1, x2 = torch.split(x, [self.pdim, self.dim - self.pdim], dim=1)
        qkv = self.qkv(self.pre_norm(x1))
        q, k, v = qkv.split([self.qk_dim, self.qk_dim, self.pdim], dim=1)
        q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
        attn = ((q.transpose(-1, -2) @ k) * self.scale).softmax(dim=-1)
        x1 = (v @ attn.transpose(-1, -2)).reshape(b, self.pdim, h, w)
        return self.proj(torch.cat([x1, x2], dim=1))

    @torch.no_grad()
    def fuse(self) -> SHSADeploy:
        """Fold qkv's BN, the GroupNorm affine and the attention scale into one 1x1 conv.

        qkv(gamma * n + beta) = (W * gamma) n + (W beta + b); the scale multiplies only the q rows.
        What remains of the GroupNorm is a parameter-free normalisation, which every runtime has.
        """
        conv = self.qkv.fuse()
        conv_bias = cast(torch.Tensor, conv.bias)  # Conv2dBN.fuse builds its conv with bias=True
        gamma, beta = self.pre_norm.weight, self.pre_norm.bias
        weight = conv.weight[:, :, 0, 0]
        bias = conv_bias + weight @ beta
        weight = weight * gamma[None, :]
        row_scale = torch.ones_like(bias)
        row_scale[: self.qk_dim] = self.scale
        conv.weight.copy_((weight * row_scale[:, None])[:, :, None, None])
        conv_bias.copy_(bias * row_scale)
        return SHSADeploy(self.dim, self.qk_dim, self.pdim, eps=self.pre_norm.eps, qkv=conv, proj=fuse_module(self.proj))


class SHSADeploy(nn.Module):
    """Deploy form of :class:`SHSA`: plain normalisation, one fused qkv conv, scale pre-applied to q."""

    def __init__(self, dim: int, qk_dim: int, pdim: int, *, eps: float, qkv: nn.Conv2d, proj: nn.Module) -> None:
        super().__init__()
        self.dim, self.qk_dim, self.pdim, self.eps = dim, qk_dim, pdim, eps
        self.qkv = qkv
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x1, x2 = x[:, : self.pdim], x[:, self.pdim :]
        qkv = self.qkv(F.group_norm(x1, 1, eps=self.eps))
        q, k, v = qkv.flatten(2).split([self.qk_dim, self.qk_dim, self.pdim], dim=1)
        attn = (q.transpose(-1, -2) @ k).softmax(dim=-1)
        x1 = (v @ attn.transpose(-1, -2)).reshape(b, self.pdim, h, w)
        return self.proj(torch.cat([x1, x2], dim=1))


class BasicBlock(nn.Module):
    """Depthwise conv (local), optional SHSA (global, type ``s``), FFN; each residual."""

    def __init__(self, dim: int, qk_dim: int, pdim: int, block_type: str) -> None:
        super().__init__()
        if block_type not in ("s", "i"):
            raise ValueError(f"block type must be 's' or 'i', not {block_type!r}")
        self.conv = Residual(Conv2dBN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0.0))
        self.mixer = Residual(SHSA(dim, qk_dim, pdim)) if block_type == "s" else nn.Identity()
        self.ffn = Residual(FFN(dim, dim * 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.mixer(self.conv(x)))

    def fuse(self) -> nn.Module:
        return _fuse_children(self)


def fuse_module(module: nn.Module) -> nn.Module:
    """The deploy form of ``module``: its own ``fuse()`` if it has one, else its children fused."""
    if hasattr(module, "fuse"):
        fuse = cast("Callable[[], nn.Module]", module.fuse)  # every fuse() here returns the deploy form
        return fuse()
    return _fuse_children(module)


def _fuse_children(module: nn.Module) -> nn.Module:
    """Replace children in place by their fused forms; callers pass a module they own (a deep copy)."""
    for name, child in list(module.named_children()):
        setattr(module, name, fuse_module(child))
    return module
