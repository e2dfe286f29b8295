"""The SHViT architecture against the published facts, and deploy-mode fusion numerically."""

from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_close, randomize_bn
from torch import nn

import shvit
from shvit.config import SHViTConfig

DATA = Path(__file__).parent / "data"
VARIANTS = ["s1", "s2", "s3", "s4"]
SMALL = SHViTConfig(embed_dim=(32, 48, 64), depth=(1, 2, 2), partial_dim=(8, 12, 16), num_classes=10, img_size=64)


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_and_mac_counts_match_the_paper(variant: str) -> None:
    model = shvit.create_model(variant)
    facts = shvit.VARIANTS[variant].published
    assert shvit.count_params(model) == facts.params
    macs = shvit.count_macs(model, shvit.VARIANTS[variant].config.img_size)
    assert round(macs / 1e6) == facts.macs_m


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_layout_is_the_released_one(variant: str) -> None:
    reference = json.loads((DATA / f"shvit_{variant}_state_dict.json").read_text())["state_dict"]
    state = shvit.create_model(variant).state_dict()
    assert list(state) == list(reference)
    assert {k: list(v.shape) for k, v in state.items()} == reference


def _golden_weights() -> dict[str, torch.Tensor]:
    """The deterministic weights documented for the golden S1 logits."""
    layout = json.loads((DATA / "shvit_s1_state_dict.json").read_text())["state_dict"]
    small_init = (".pw2.bn.weight", ".proj.1.bn.weight", ".conv.m.bn.weight")
    weights: dict[str, torch.Tensor] = {}
    for key, shape in layout.items():
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            weights[key] = torch.tensor(0, dtype=torch.int64)
            continue
        if key.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif key.endswith("running_mean"):
            value = rng.uniform(-0.5, 0.5, shape)
        elif key.endswith("weight") and len(shape) == 1:
            value = rng.uniform(0.05, 0.25, shape) if key.endswith(small_init) else rng.uniform(0.5, 1.5, shape)
        elif key.endswith("bias"):
            value = rng.uniform(-0.2, 0.2, shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        weights[key] = torch.from_numpy(np.asarray(value, dtype=np.float32))
    return weights


@pytest.fixture(scope="module")
def golden_s1() -> tuple[nn.Module, torch.Tensor, np.ndarray]:
    model = shvit.create_model("s1")
    model.load_state_dict(_golden_weights())
    x = torch.from_numpy(np.random.default_rng(1234).standard_normal((2, 3, 224, 224)).astype(np.float32))
    with np.load(DATA / "golden_s1_logits.npz") as golden:
        return model, x, golden["logits"]


def test_s1_reproduces_the_published_network_golden_logits(golden_s1) -> None:
    model, x, golden = golden_s1
    with torch.no_grad():
        assert_close(model(x).numpy(), golden, rel=1e-5, what="S1 vs golden logits")


def test_deploy_mode_reproduces_the_golden_logits(golden_s1) -> None:
    model, x, golden = golden_s1
    with torch.no_grad():
        assert_close(shvit.reparameterize(model)(x).numpy(), golden, rel=1e-5, what="fused S1 vs golden logits")


def _fused_vs_unfused(model: nn.Module, size: int) -> None:
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    deployed = shvit.reparameterize(model)
    with torch.no_grad():
        expected, actual = model(x).numpy(), deployed(x).numpy()
    assert np.abs(expected).max() > 1e-2, "randomised model must produce non-trivial logits"
    assert_close(actual, expected, rel=1e-5, what="fused vs unfused")


@pytest.mark.parametrize("variant", VARIANTS)
def test_fusion_parity_on_randomised_released_variants(variant: str) -> None:
    model = randomize_bn(shvit.create_model(variant), seed=7)
    _fused_vs_unfused(model, 64)


def test_fusion_parity_with_distillation_head_and_odd_resolution() -> None:
    config = SHViTConfig(embed_dim=(32, 48, 64), depth=(1, 2, 2), partial_dim=(8, 12, 16), num_classes=7, distillation=True)
    model = randomize_bn(shvit.SHViT(config).eval(), seed=3)
    with torch.no_grad():
        for p in model.head_dist.parameters():
            p.add_(torch.randn_like(p))
    _fused_vs_unfused(model, 96)  # 96 px: 6x6, 3x3 and 2x2 token grids (odd sizes through the stride-2 merges)
    assert shvit.reparameterize(model).head_dist is None


def test_no_normalisation_module_with_parameters_survives_fusion() -> None:
    deployed = shvit.reparameterize(randomize_bn(shvit.create_model("s1")))
    leftovers = [n for n, m in deployed.named_modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm))]
    assert leftovers == []
    assert not any(isinstance(m, shvit.layers.Residual) and isinstance(m.m, nn.Conv2d) for m in deployed.modules())


def test_reparameterize_leaves_its_argument_untouched() -> None:
    model = randomize_bn(shvit.SHViT(SMALL).eval(), seed=5)
    before = copy.deepcopy(model.state_dict())
    types_before = [type(m) for m in model.modules()]
    shvit.reparameterize(model)
    assert [type(m) for m in model.modules()] == types_before
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_fusion_shrinks_the_module_graph() -> None:
    """Speed is measured in benchmarks/bench_pytorch.py; here: fusion removes modules from the graph."""
    model = shvit.create_model("s1")
    deployed = shvit.reparameterize(model)
    assert sum(1 for _ in deployed.modules()) < sum(1 for _ in model.modules())


def test_pixel_input_bakes_the_normalisation_exactly() -> None:
    model = randomize_bn(shvit.SHViT(SMALL).eval(), seed=2)
    pixels = np.random.default_rng(2).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = model(torch.from_numpy(shvit.normalize(pixels))).numpy()
        actual = shvit.PixelInput(shvit.reparameterize(model))(torch.from_numpy(pixels).permute(0, 3, 1, 2).float()).numpy()
    assert_close(actual, expected, rel=1e-5, what="pixel-input model")


def test_unknown_variant_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown SHViT variant 's9': choose one of s1, s2, s3, s4"):
        shvit.create_model("s9")
