"""Checkpoints saved by other training stacks: SHViT keys under a wrapper prefix or nested in a training state.

Each file is written the way its stack writes it (the wrapper modules' own ``state_dict()``), from a
small SHViT, and must load to exactly the logits of the unwrapped weights.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import randomize_bn
from safetensors.torch import save_file
from tiny_model import TINY_CONFIG
from torch import nn

import shvit
from shvit.errors import WeightsError
from shvit.weights import official_to_timm

X = torch.randn(2, 3, TINY_CONFIG.img_size, TINY_CONFIG.img_size, generator=torch.Generator().manual_seed(1))


def _model(seed: int) -> shvit.SHViT:
    torch.manual_seed(seed)
    return randomize_bn(shvit.SHViT(TINY_CONFIG), seed=seed)


def _logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(X)


def _load(path: Path) -> shvit.SHViT:
    return shvit.create_model(TINY_CONFIG, weights=path, num_classes=TINY_CONFIG.num_classes)


class _Lightning(nn.Module):
    """A LightningModule's attributes: the network as ``self.model`` beside a loss with a buffer."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.criterion = nn.CrossEntropyLoss(weight=torch.ones(TINY_CONFIG.num_classes))


class _HFClassifier(nn.Module):
    """A Hugging Face style wrapper: the backbone under its model-type name, a head of its own beside it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.shvit = model
        self.classifier = nn.Linear(4, 2)


class _DDP(nn.Module):
    """DistributedDataParallel's naming (``module.``) without a process group."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.module = model


def _optimizer_state(model: nn.Module, network: nn.Module | None = None) -> dict:
    """A real optimizer state (one AdamW step), as training checkpoints carry beside the weights."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    network = network or model
    network.train()
    network(X).sum().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return opt.state_dict()


def _compiled(model: nn.Module, path: Path) -> None:
    torch.save(torch.compile(model).state_dict(), path)


def _lightning(model: nn.Module, path: Path) -> None:
    module = _Lightning(model)
    snapshot = {k: v.clone() for k, v in module.state_dict().items()}  # before the optimizer step moves the weights
    optimizer = _optimizer_state(module, module.model)
    torch.save(
        {
            "epoch": 3,
            "global_step": 30,
            "pytorch-lightning_version": "2.4.0",
            "state_dict": snapshot,
            "optimizer_states": [optimizer],
            "lr_schedulers": [],
            "callbacks": {},
        },
        path,
    )


def _huggingface(model: nn.Module, path: Path) -> None:
    save_file({k: v.contiguous() for k, v in _HFClassifier(model).state_dict().items()}, str(path))


def _ddp_of_compiled(model: nn.Module, path: Path) -> None:
    torch.save({"model": _DDP(torch.compile(model)).state_dict(), "epoch": 7}, path)


def _timm_layout_in_a_backbone(model: nn.Module, path: Path) -> None:
    torch.save({"state_dict": {f"model.backbone.{k}": v for k, v in official_to_timm(model.state_dict()).items()}}, path)


WRITERS: dict[str, tuple[str, Callable[[nn.Module, Path], None]]] = {
    "torch.compile (_orig_mod.)": ("w.pth", _compiled),
    "Lightning (state_dict/model.)": ("w.ckpt", _lightning),
    "Hugging Face (shvit.)": ("model.safetensors", _huggingface),
    "DDP of torch.compile (module._orig_mod.)": ("w.pth", _ddp_of_compiled),
    "timm layout (model.backbone.)": ("w.pth", _timm_layout_in_a_backbone),
}


@pytest.mark.parametrize("stack", sorted(WRITERS))
def test_a_wrapped_checkpoint_loads_to_the_same_logits(tmp_path: Path, stack: str) -> None:
    model = _model(seed=4)
    expected = _logits(model)
    name, write = WRITERS[stack]
    path = tmp_path / name
    write(model, path)
    assert torch.equal(_logits(_load(path)), expected)
    auto = shvit.create_model("auto", weights=path)
    assert dataclasses.replace(auto.config, img_size=TINY_CONFIG.img_size) == TINY_CONFIG  # the size is not in the weights
    assert torch.equal(_logits(auto), expected)


def test_the_training_weights_are_preferred_to_an_ema_copy_and_the_log_says_so(tmp_path: Path, caplog) -> None:
    model, ema = _model(seed=4), _model(seed=5)
    path = tmp_path / "train.pth"
    torch.save(
        {"model_ema": ema.state_dict(), "model": model.state_dict(), "optimizer": _optimizer_state(_model(seed=6)), "epoch": 299}, path
    )
    with caplog.at_level(logging.INFO, logger="shvit"):
        loaded = _load(path)
    assert torch.equal(_logits(loaded), _logits(model))
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("shvit")]
    assert any("using 'model.'" in m and "'model_ema.'" in m and "EMA" in m for m in messages), messages


def test_a_lightning_checkpoint_with_ema_weights_uses_the_model(tmp_path: Path) -> None:
    model, ema = _model(seed=4), _model(seed=5)
    state = {
        **{f"model.{k}": v for k, v in model.state_dict().items()},
        **{f"model_ema.module.{k}": v for k, v in ema.state_dict().items()},
    }
    torch.save({"state_dict": state, "epoch": 1}, tmp_path / "w.ckpt")
    assert torch.equal(_logits(_load(tmp_path / "w.ckpt")), _logits(model))


def test_a_wrapped_checkpoint_that_does_not_fit_names_its_prefix(tmp_path: Path) -> None:
    wider = dataclasses.replace(TINY_CONFIG, embed_dim=(32, 48, 80), partial_dim=(8, 12, 20))
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in shvit.SHViT(wider).state_dict().items()}}, tmp_path / "w.ckpt")
    with pytest.raises(WeightsError) as info:
        _load(tmp_path / "w.ckpt")
    message = str(info.value)
    assert "its keys under 'state_dict.encoder.' look like an SHViT with embed_dim=[32, 48, 80]" in message, message
    assert "shape mismatches" in message and "\n" not in message


def test_a_partial_wrapped_checkpoint_names_its_prefix(tmp_path: Path) -> None:
    stem = {f"encoder.{k}": v for k, v in _model(seed=4).state_dict().items() if k.startswith("patch_embed.")}
    torch.save(stem, tmp_path / "stem.pth")
    with pytest.raises(WeightsError, match=r"its keys under 'encoder\.' look like SHViT layers but not a whole SHViT; \d+ missing keys"):
        _load(tmp_path / "stem.pth")
