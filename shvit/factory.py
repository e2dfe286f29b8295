"""Building an SHViT: a published variant or a checkpoint's own shapes, its weights, and where they came from."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from shvit.config import VARIANTS, SHViTConfig, get_variant
from shvit.errors import SHViTError, WeightsError
from shvit.model import SHViT
from shvit.provenance import WeightsOrigin, mark_origin, state_sha256
from shvit.weights import as_official, fetch_released, infer_config, load_into, read_state_dict, sha256_of


def resolve_weights(variant: str, weights: str | os.PathLike[str]) -> Path:
    """The local file behind a ``weights`` argument: a path, or ``"imagenet"`` (downloaded and cached)."""
    if str(weights) == "imagenet":
        return fetch_released(get_variant(variant).name)
    return Path(weights)


def create_model(
    variant: str | SHViTConfig,
    *,
    weights: str | os.PathLike[str] | None = None,
    num_classes: int = 1000,
    seed: int | None = None,
) -> SHViT:
    """An unfused SHViT in eval mode; call :func:`reparameterize` on it for deploy mode.

    ``variant`` is ``"s1"`` … ``"s4"``, a :class:`SHViTConfig`, or ``"auto"`` (configuration
    inferred from the shapes of ``weights``, for fine-tuned or custom-sized checkpoints).
    Without ``weights`` the weights are random: drawn from torch's global generator, or with
    ``seed`` from a private one (the global generator is left as it was). The model carries where
    its weights came from (``model.weights_origin``), which exports record.
    """
    if isinstance(variant, SHViTConfig):
        config, name = variant.with_classes(num_classes), None
    elif variant == "auto":
        if weights is None or str(weights) == "imagenet":
            raise SHViTError(
                "variant 'auto' infers the architecture from a checkpoint file: give its path as the weights, "
                "or name the variant (s1-s4) to use the released ImageNet weights"
            )
        state_dict = read_state_dict(weights)
        inferred = infer_config(as_official(state_dict))
        if inferred is None:
            raise WeightsError(f"{weights} is not an SHViT checkpoint: no patch_embed/blocks/head keys found")
        model = SHViT(inferred)
        load_into(model, state_dict, source=str(weights))
        return _with_origin(model.eval(), path=Path(weights))
    else:
        name = get_variant(variant).name
        config = VARIANTS[name].config.with_classes(num_classes)
    if weights is None:
        return _with_origin(_random_model(config, seed).eval(), seed=seed)
    model = SHViT(config)
    path = resolve_weights(name, weights) if name else Path(weights)
    load_into(model, read_state_dict(path), source=str(path))
    return _with_origin(model.eval(), path=path, source=str(weights))


def _random_model(config: SHViTConfig, seed: int | None) -> SHViT:
    if seed is None:
        return SHViT(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SHViT(config)


def _with_origin(model: SHViT, *, path: Path | None = None, source: str | None = None, seed: int | None = None) -> SHViT:
    state = state_sha256(model)
    if path is None:
        origin = WeightsOrigin(state_sha256=state, seed=seed)
    else:
        origin = WeightsOrigin(state_sha256=state, source=source or str(path), path=str(path), sha256=sha256_of(path))
    mark_origin(model, origin)
    return model
