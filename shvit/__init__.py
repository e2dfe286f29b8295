"""SHViT S1-S4 in PyTorch: released-checkpoint loading and deploy-mode reparameterisation.

Stable public API: :func:`create_model`, :func:`reparameterize`, :data:`VARIANTS`. Names load on first
use, so ``import shvit`` (and every command's argument parsing) does not wait for PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from shvit.config import IMAGENET_MEAN, IMAGENET_STD, VARIANTS, Preprocessing, SHViTConfig, Variant, get_variant
from shvit.errors import SHViTError, WeightsError
from shvit.provenance import RANDOM_INIT_SEED, WeightsOrigin

if TYPE_CHECKING:
    from shvit.deploy import PixelInput
    from shvit.factory import create_model, resolve_weights
    from shvit.model import SHViT
    from shvit.preprocess import normalize
    from shvit.profile import count_macs, count_params
    from shvit.provenance import origin_of
    from shvit.reparam import reparameterize

__version__ = "0.1.0"

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RANDOM_INIT_SEED",
    "VARIANTS",
    "PixelInput",
    "Preprocessing",
    "SHViT",
    "SHViTConfig",
    "SHViTError",
    "Variant",
    "WeightsError",
    "WeightsOrigin",
    "__version__",
    "count_macs",
    "count_params",
    "create_model",
    "get_variant",
    "normalize",
    "origin_of",
    "reparameterize",
    "resolve_weights",
]

_LAZY: dict[str, str] = {
    "PixelInput": "shvit.deploy",
    "create_model": "shvit.factory",
    "resolve_weights": "shvit.factory",
    "SHViT": "shvit.model",
    "normalize": "shvit.preprocess",
    "count_macs": "shvit.profile",
    "count_params": "shvit.profile",
    "origin_of": "shvit.provenance",
    "reparameterize": "shvit.reparam",
}
_SUBMODULES = frozenset(
    {"config", "deploy", "errors", "factory", "layers", "model", "preprocess", "profile", "progress", "provenance", "reparam", "weights"}
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"shvit.{name}")
    raise AttributeError(f"module 'shvit' has no attribute {name!r}")
