"""Deploy mode: fold every BatchNorm (and the residuals, GroupNorm affine, distillation pair) away."""

from __future__ import annotations

import copy
import dataclasses

from torch import nn

from shvit.layers import fuse_module
from shvit.provenance import mark_origin, origin_of, state_sha256


def reparameterize(model: nn.Module) -> nn.Module:
    """A new deploy-mode model computing the same function; ``model`` itself is left untouched.

    Fusion uses BN running statistics, so it must happen after the checkpoint is loaded: this is
    why :func:`shvit.create_model` always returns the unfused model.
    """
    deployed = fuse_module(copy.deepcopy(model)).eval()
    leftover = [name for name, m in deployed.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if leftover:
        raise RuntimeError(f"reparameterisation left BatchNorm modules behind: {', '.join(leftover[:3])}")
    origin = origin_of(model)
    if origin is not None:  # the same weights, folded: an export of it records where they came from
        mark_origin(deployed, dataclasses.replace(origin, state_sha256=state_sha256(deployed), fused=True))
    return deployed
