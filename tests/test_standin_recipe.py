"""The stand-in's distillation recipe (benchmarks/make_standin.py) is seeded and resumable.

The real run (EfficientNet-Lite0 teacher, an hour on 2 cores) never runs here: these tests drive the
same training loop for a few steps with a small stand-in teacher and generated images, which is what
the "same seed → same checkpoint" and "resumable" promises rest on.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from shvit.provenance import state_sha256

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def standin():
    spec = importlib.util.spec_from_file_location("make_standin", ROOT / "benchmarks" / "make_standin.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_standin"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("make_standin", None)


class SmallTeacher(nn.Module):
    """1000-class logits that depend on the view's colours and layout, like a classifier's."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(5)
        self.head = nn.Linear(3 * 16, 1000)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(1000, 48, generator=generator) * 3)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))


def _images(count: int, size: int, seed: int) -> list[torch.Tensor]:
    import calib

    return [torch.from_numpy(image).permute(2, 0, 1).float() / 255 for image in calib.synthetic_images(count, size, seed=seed)]


def _inputs(tmp: Path) -> dict:
    return {
        "teach": SmallTeacher().eval(),
        "train_images": _images(3, 96, seed=1),
        "synthetic": _images(3, 96, seed=2),
        "resume_file": tmp / "partial.pt",
        "save_every": 100,  # the last step is always saved
        "log": lambda _line: None,
    }


def test_views_are_a_function_of_seed_and_step(standin):
    images, synthetic = _images(2, 96, seed=1), _images(2, 96, seed=2)

    def views(step: int) -> torch.Tensor:
        rng = np.random.default_rng([0, step])
        return torch.stack([standin.training_view(rng, images, synthetic, 64) for _ in range(8)])

    first, again, other = views(3), views(3), views(4)
    assert first.shape == (8, 3, 64, 64)
    assert float(first.min()) >= 0 and float(first.max()) <= 1
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_same_seed_same_checkpoint_and_resuming_changes_nothing(standin, tmp_path):
    recipe = standin.Recipe(seed=3, steps=4, batch=2, train_size=64, teacher_size=64, warmup=1, threads=1)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    straight = standin.train(recipe, **_inputs(tmp_path / "a"))
    again = standin.train(recipe, **_inputs(tmp_path / "b"))
    assert state_sha256(straight) == state_sha256(again)

    inputs = _inputs(tmp_path / "c")
    state = torch.load(tmp_path / "a" / "partial.pt", weights_only=True)
    assert state["step"] == recipe.steps
    # Resume from a partial checkpoint written at step 2 by a run of the same recipe.
    half = standin.train(dataclasses.replace(recipe, steps=2), **inputs)
    assert state_sha256(half) != state_sha256(straight)
    partial = torch.load(inputs["resume_file"], weights_only=True)
    partial["recipe"] = dataclasses.asdict(recipe)
    torch.save(partial, inputs["resume_file"])
    resumed = standin.train(recipe, **inputs)
    assert state_sha256(resumed) == state_sha256(straight)


def test_a_partial_checkpoint_of_another_recipe_is_not_resumed(standin, tmp_path):
    recipe = standin.Recipe(seed=3, steps=2, batch=2, train_size=64, teacher_size=64, warmup=1, threads=1)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fresh = standin.train(recipe, **_inputs(tmp_path / "a"))
    other = _inputs(tmp_path / "b")
    standin.train(dataclasses.replace(recipe, seed=4), **other)
    assert state_sha256(standin.train(recipe, **other)) == state_sha256(fresh)


def test_behaviour_figures(standin):
    confident = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    tied = torch.tensor([[0.34, 0.33, 0.33], [0.33, 0.34, 0.33]])
    row = standin.behaviour(confident, confident)
    assert row["top1_agreement"] == 1.0 and row["distinct_top1"] == 2
    assert row["median_top1_prob"] == pytest.approx(0.8)
    flat = standin.behaviour(tied, confident)
    assert flat["margin_p90"] < 0.02 and flat["top1_agreement"] == 1.0
    assert standin.behaviour(tied[[1, 0]], confident)["top1_agreement"] == 0.0


def test_benchmarks_asking_for_a_missing_stand_in_get_one_line_naming_the_command(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("SHVIT_CACHE_DIR", str(tmp_path / "cache"))
    assert standin.resolve_weights("my.pth", "s1") == "my.pth" and standin.resolve_weights(None, "s1") is None
    with pytest.raises(SystemExit) as exc:
        standin.resolve_weights("standin", "s1")
    message = str(exc.value)
    assert message.count("\n") == 0 and message.startswith("error: no stand-in for s1 at ")
    assert "python benchmarks/make_standin.py --variant s1" in message
    assert not (tmp_path / "cache").exists(), "asking must not create the cache"
