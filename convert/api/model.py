"""The ``model`` argument of the API: an ``nn.Module``, a checkpoint path or a variant name."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from torch import nn

import shvit
from convert.config import ModelSpec, check_input_size
from convert.errors import ArgumentError
from convert.source import ModelSource, load_source, source_from_module

Labels = str | os.PathLike[str] | Sequence[str] | None
_logger = logging.getLogger(__name__)


def model_spec(
    model: nn.Module | str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None,
    num_classes: int,
    labels: Labels,
    input_size: int | None,
    seed: int | None = None,
) -> ModelSpec | None:
    """What to load for ``model`` (None for a model object, which needs no loading); a bad type is an ArgumentError."""
    if input_size is not None:
        check_input_size(input_size)
    if isinstance(model, nn.Module):
        return None
    if not isinstance(model, (str, os.PathLike)):
        raise ArgumentError(
            f"model must be an nn.Module, a checkpoint path or a variant name, not {type(model).__name__}", argument="model"
        )
    if seed is not None and (weights is not None or not is_variant(str(model))):
        raise ArgumentError("picks a random draw, so it goes with a variant name and no weights", argument="seed")
    if is_variant(str(model)):
        # ModelSpec.weights is annotated str | Path, but its readers take only str() or Path() of it, so any
        # PathLike works (widening that annotation needs preflight's in convert/api/pipeline.py widened too).
        weights = cast("str | Path | None", weights)
        return ModelSpec(
            variant=str(model).lower(), weights=weights, num_classes=num_classes, labels=as_labels(labels), input_size=input_size, seed=seed
        )
    return ModelSpec(variant="auto", weights=Path(model), num_classes=num_classes, labels=as_labels(labels), input_size=input_size)


def load_model(model: nn.Module | str | os.PathLike[str], spec: ModelSpec | None, *, labels: Labels, input_size: int | None) -> ModelSource:
    if spec is None:
        _logger.info("→ fusing BatchNorms of the given model")
        return source_from_module(model, labels=as_labels(labels), input_size=input_size)  # type: ignore[arg-type]
    weights = spec.weights or f"random weights, seed {spec.random_seed}, not for deployment"
    name = "SHViT (shapes read from the checkpoint)" if spec.variant == "auto" else f"SHViT-{spec.variant.upper()}"
    _logger.info(f"→ loading {name} ({weights}) and fusing BatchNorms")
    return load_source(spec)


def is_variant(text: str) -> bool:
    key = text.lower().removeprefix("shvit_").removeprefix("shvit-")
    return key == "auto" or key in shvit.VARIANTS


def as_labels(labels: Labels) -> Path | Sequence[str] | None:
    return Path(labels) if isinstance(labels, (str, os.PathLike)) else labels
