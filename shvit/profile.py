"""Parameter and multiply-add counts, to hold the implementation to the paper's table."""

from __future__ import annotations

import torch
from torch import nn

from shvit.layers import SHSA, SHSADeploy


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def count_macs(model: nn.Module, img_size: int) -> int:
    """Multiply-adds of convolutions, linears and the attention's two matrix products for one image."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    def attn_hook(m: SHSA | SHSADeploy, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        nonlocal total
        n = inp[0].shape[2] * inp[0].shape[3]
        total += n * n * m.qk_dim + n * n * m.pdim

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
        elif isinstance(mod, (SHSA, SHSADeploy)):
            handles.append(mod.register_forward_hook(attn_hook))
    was_training = model.training
    model.eval()
    try:
        in_chans = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
        model(torch.zeros(1, in_chans, img_size, img_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
