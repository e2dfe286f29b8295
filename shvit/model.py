"""The SHViT network (Yun & Ro, CVPR 2024), in the official code's module layout."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from shvit.config import SHViTConfig
from shvit.layers import FFN, BasicBlock, BNLinear, Conv2dBN, PatchMerging, Residual, fuse_module


def _conv_ffn_pair(dim: int) -> nn.Sequential:
    """The (depthwise conv, FFN) pair placed on both sides of every PatchMerging."""
    return nn.Sequential(Residual(Conv2dBN(dim, dim, 3, 1, 1, groups=dim)), Residual(FFN(dim, dim * 2)))


class SHViT(nn.Module):
    """16x16 patchify stem, three stages of BasicBlocks, pooled BN+Linear head.

    Attribute names match the released checkpoints (``blocks1..3``, ``head``, ``head_dist``) so
    they load without renaming; the timm layout is translated by :mod:`shvit.weights`.
    """

    def __init__(self, config: SHViTConfig) -> None:
        super().__init__()
        self.config = config
        e = config.embed_dim
        self.patch_embed = nn.Sequential(
            Conv2dBN(config.in_chans, e[0] // 8, 3, 2, 1),
            nn.ReLU(),
            Conv2dBN(e[0] // 8, e[0] // 4, 3, 2, 1),
            nn.ReLU(),
            Conv2dBN(e[0] // 4, e[0] // 2, 3, 2, 1),
            nn.ReLU(),
            Conv2dBN(e[0] // 2, e[0], 3, 2, 1),
        )
        stages: list[list[nn.Module]] = [[], [], []]
        for i in range(3):
            if i > 0:
                stages[i] += [_conv_ffn_pair(e[i - 1]), PatchMerging(e[i - 1], e[i]), _conv_ffn_pair(e[i])]
            stages[i] += [BasicBlock(e[i], config.qk_dim[i], config.partial_dim[i], config.types[i]) for _ in range(config.depth[i])]
        self.blocks1, self.blocks2, self.blocks3 = (nn.Sequential(*blocks) for blocks in stages)
        self.head: nn.Module = BNLinear(e[2], config.num_classes)
        self.head_dist: nn.Module | None = BNLinear(e[2], config.num_classes) if config.distillation else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks3(self.blocks2(self.blocks1(self.patch_embed(x))))

    def global_pool(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C) spatial mean; exporters override it where a runtime wants another layout."""
        return features.mean((2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Pool and classify (averaging the distillation head in eval): the one head every graph form shares."""
        x = self.global_pool(features)
        if self.head_dist is None:
            return self.head(x)
        if self.training:
            raise RuntimeError("training with a distillation head is not supported by this toolkit")
        return (self.head(x) + self.head_dist(x)) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> SHViT:
        """A fresh head of ``num_classes`` (for fine-tuning), as timm's ``reset_classifier``; the config follows."""
        features = self.config.embed_dim[2]
        self.head = BNLinear(features, num_classes)
        self.head_dist = BNLinear(features, num_classes) if self.head_dist is not None else None
        self.config = self.config.with_classes(num_classes)
        return self

    @torch.no_grad()
    def fuse(self) -> SHViT:
        """Fuse every child; a distillation head pair becomes one Linear (the mean of two linears is linear)."""
        for name in ("patch_embed", "blocks1", "blocks2", "blocks3", "head"):
            setattr(self, name, fuse_module(getattr(self, name)))
        if self.head_dist is not None:
            # Both heads are BNLinear, whose fused form is an nn.Linear.
            head, dist = cast(nn.Linear, self.head), cast(nn.Linear, fuse_module(self.head_dist))
            head.weight.copy_((head.weight + dist.weight) / 2)
            head.bias.copy_((head.bias + dist.bias) / 2)
            self.head_dist = None
        return self
