"""SHViT S1-S4 in PyTorch: released-checkpoint loading and deploy-mode reparameterisation.

Stable public API: :func:`create_model`, :func:`reparameterize`, :data:`VARIANTS`.
"""
from __future__ import annotations

import os
from pathlib import Path

from shvit.config import IMAGENET_MEAN, IMAGENET_STD, VARIANTS, Preprocessing, SHViTConfig, Variant, get_variant
from shvit.deploy import PixelInput
from shvit.errors import SHViTError, WeightsError
from shvit.model import SHViT
from shvit.preprocess import normalize
from shvit.profile import count_macs, count_params
from shvit.reparam import reparameterize
from shvit.weights import as_official, fetch_released, infer_config, load_into, read_state_dict

__version__ = "0.1.0"

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "VARIANTS", "Preprocessing", "SHViT", "SHViTConfig", "SHViTError", "Variant",
    "WeightsError", "PixelInput", "count_macs", "count_params", "create_model", "get_variant", "normalize", "reparameterize",
    "resolve_weights", "__version__",
]


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
) -> SHViT:
    """An unfused SHViT in eval mode; call :func:`reparameterize` on it for deploy mode.

    ``variant`` is ``"s1"`` … ``"s4"``, a :class:`SHViTConfig`, or ``"auto"`` (configuration
    inferred from the shapes of ``weights``, for fine-tuned or custom-sized checkpoints).
    """
    if isinstance(variant, SHViTConfig):
        config, name = variant.with_classes(num_classes), None
    elif variant == "auto":
        if weights is None or str(weights) == "imagenet":
            raise SHViTError(
                "variant 'auto' infers the architecture from a checkpoint file: pass its path as the weights (--weights PATH), "
                "or name the variant (s1-s4) to use the released ImageNet weights"
            )
        state_dict = read_state_dict(weights)
        inferred = infer_config(as_official(state_dict))
        if inferred is None:
            raise WeightsError(f"{weights} is not an SHViT checkpoint: no patch_embed/blocks/head keys found")
        model = SHViT(inferred)
        load_into(model, state_dict, source=str(weights))
        return model.eval()
    else:
        name = get_variant(variant).name
        config = VARIANTS[name].config.with_classes(num_classes)
    model = SHViT(config)
    if weights is not None:
        path = resolve_weights(name, weights) if name else Path(weights)
        load_into(model, read_state_dict(path), source=str(path))
    return model.eval()
