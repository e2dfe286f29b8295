"""The ``model`` argument of the API: an ``nn.Module``, a checkpoint path or a variant name."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from torch import nn

import shvit
from convert.config import ModelSpec
from convert.errors import ArgumentError
from convert.source import ModelSource, load_source, source_from_module

Labels = str | os.PathLike[str] | Sequence[str] | None
_logger = logging.getLogger(__name__)


def model_spec(model: nn.Module | str | os.PathLike[str], *, weights: str | os.PathLike[str] | None, num_classes: int,
               labels: Labels, input_size: int | None) -> ModelSpec | None:
    """What to load for ``model`` (None for a model object, which needs no loading); a bad type is an ArgumentError."""
    if isinstance(model, nn.Module):
        return None
    if not isinstance(model, (str, os.PathLike)):
        raise ArgumentError(f"model must be an nn.Module, a checkpoint path or a variant name, not {type(model).__name__}",
                            argument="model")
    if is_variant(str(model)):
        return ModelSpec(variant=str(model).lower(), weights=weights, num_classes=num_classes, labels=as_labels(labels),
                         input_size=input_size)
    return ModelSpec(variant="auto", weights=Path(model), num_classes=num_classes, labels=as_labels(labels), input_size=input_size)


def load_model(model: nn.Module | str | os.PathLike[str], spec: ModelSpec | None, *, labels: Labels,
               input_size: int | None) -> ModelSource:
    if spec is None:
        _logger.info("→ fusing BatchNorms of the given model")
        return source_from_module(model, labels=as_labels(labels), input_size=input_size)  # type: ignore[arg-type]
    _logger.info(f"→ loading SHViT-{spec.variant.upper()} ({spec.weights or 'random weights, not for deployment'}) and fusing BatchNorms")
    return load_source(spec)


def is_variant(text: str) -> bool:
    key = text.lower().removeprefix("shvit_").removeprefix("shvit-")
    return key == "auto" or key in shvit.VARIANTS


def as_labels(labels: Labels) -> Path | Sequence[str] | None:
    return Path(labels) if isinstance(labels, (str, os.PathLike)) else labels
