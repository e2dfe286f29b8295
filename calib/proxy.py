"""Image-dependent random weights: the stand-ins tests and benchmarks measure on when no trained SHViT is at hand.

A fresh SHViT's BatchNorms are near-identity and zero-initialised, so every image gets nearly the same
logits; statistics measured on generated natural-looking images make the logits depend on the image.
Top-1 agreement on such a model still measures near-ties: judge accuracy on a trained model.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from calib.preprocess import normalize
from calib.synthetic import synthetic_images


@torch.no_grad()
def randomize_bn(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Non-trivial BN/GroupNorm statistics and affines: a fresh SHViT has zero-init BN weights that hide fusion bugs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            cast(torch.Tensor, m.running_mean).copy_(torch.rand(n, generator=g) - 0.5)
            cast(torch.Tensor, m.running_var).copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
        elif isinstance(m, nn.GroupNorm):
            m.weight.copy_(torch.rand(m.num_channels, generator=g) + 0.5)
            m.bias.copy_(torch.rand(m.num_channels, generator=g) * 0.4 - 0.2)
    return model.eval()


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, *, size: int, images: int = 16, seed: int = 0) -> nn.Module:
    """BN statistics measured on natural-looking images, so logits depend on the image like a trained model's."""
    randomize_bn(model, seed=seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes below
    x = torch.from_numpy(normalize(synthetic_images(images, size, seed=seed)))
    model.train()
    for chunk in x.split(8):
        model(chunk)
    return model.eval()


RESIDUAL_BRANCH_BNS = (".pw2.bn", ".proj.1.bn", ".conv.m.bn")


def trained_like(variant: str, *, seed: int) -> nn.Module:
    """Random weights made trained-like: BN statistics measured on generated images (image-dependent
    logits) and small residual-branch BN scales, U(0.05, 0.25) as in the project's golden S1 check.
    Full-strength random residual branches compound rounding far more than any trained network does."""
    import shvit

    torch.manual_seed(seed)
    model = recompute_bn_stats(shvit.create_model(variant), size=224, images=8, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith(RESIDUAL_BRANCH_BNS):
                module.weight.copy_(torch.rand(module.num_features, generator=generator) * 0.2 + 0.05)
    return model.eval()
