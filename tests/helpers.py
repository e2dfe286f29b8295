"""Shared test helpers: image-dependent weights and the one compare assertion everyone uses."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import calib


@torch.no_grad()
def randomize_bn(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Non-trivial BN/GroupNorm statistics and affines: a fresh SHViT has zero-init BN weights that hide fusion bugs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
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
    x = torch.from_numpy(calib.normalize(calib.synthetic_images(images, size, seed=seed)))
    model.train()
    for chunk in x.split(8):
        model(chunk)
    return model.eval()


def assert_close(actual: np.ndarray, expected: np.ndarray, *, rel: float, what: str = "logits") -> None:
    """max |Δ| relative to the expected values' scale; the message shows the figures, not just False."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.abs(expected).max()) or 1.0
    err = float(np.abs(actual - expected).max())
    assert err <= rel * scale, f"{what}: max |Δ| {err:.3g} = {err / scale:.3g} of scale {scale:.3g} > {rel:g}"


def export_source(
    source,
    *,
    target: str,
    out_dir,
    precision: str | None = None,
    images=None,
    calib=None,
    calib_count: int = 32,
    force: bool = False,
    **target_options,
):
    """The export pipeline on an already loaded :class:`convert.source.ModelSource` (shared by a test's several exports)."""
    from pathlib import Path

    from convert.api.pipeline import run_export
    from convert.config import ExportOptions, OutputSpec, plan
    from convert.io.scratch import Scratch

    options = ExportOptions(
        target=target, precision=precision, calib=Path(calib) if calib else None, calib_count=calib_count, target_options=target_options
    )
    with Scratch.open() as scratch:
        return run_export(
            plan(options, OutputSpec(out_dir=Path(out_dir), force=force)), source, images=Path(images) if images else None, scratch=scratch
        )


def run_in_runtime(artifact, pixels):
    """``run_artifact`` with a scratch folder of its own."""
    from convert.io.scratch import Scratch
    from convert.validate.runner import run_artifact

    with Scratch.open() as scratch:
        return run_artifact(artifact, pixels, scratch=scratch)


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
