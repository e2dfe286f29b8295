"""The PyTorch side of every export: the published network as reference, and its deploy form.

Fusion happens here, after the checkpoint is loaded, never before. A model given as an
``nn.Module`` (say, fine-tuned in a notebook) is copied, never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

import shvit
import shvit.provenance
from convert.config import ModelSpec, Naming, check_input_size
from convert.errors import ArgumentError
from convert.labels import default_labels, read_labels, validate_labels
from shvit.weights import published_variant


@dataclass
class ModelSource:
    """Reference (unfused, normalised input) and deploy (fused, pixel input) forms of one model."""

    variant: str
    input_size: int
    reference: nn.Module
    deploy: nn.Module
    pixel_model: nn.Module
    labels: list[str]
    weights_info: dict[str, object]
    labels_file: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @torch.no_grad()
    def reference_logits(self, pixels: np.ndarray, *, batch: int = 16, progress: bool = False) -> np.ndarray:
        """Logits of the published network on uint8 NHWC pixels, through the shared normalisation."""
        from shvit import normalize
        from shvit.progress import progress_bar

        outs = []
        starts = range(0, len(pixels), batch)
        for start in progress_bar(iterable=starts, desc="PyTorch reference", unit="batch", enabled=progress and len(pixels) > batch):
            outs.append(self.reference(torch.from_numpy(normalize(pixels[start : start + batch]))).numpy())
        return np.concatenate(outs).astype(np.float32)

    @property
    def random_weights(self) -> bool:
        """A try-out on random weights: accuracy gates that need a trained model do not apply."""
        return shvit.provenance.is_random(self.weights_info)

    @property
    def naming(self) -> Naming:
        """The default file name's parts: the published variant these shapes are (``custom`` if none)."""
        config = self.reference.config if isinstance(self.reference.config, shvit.SHViTConfig) else None
        variant = self.variant if self.variant != "auto" else published_variant(config) or "custom"
        native = config.img_size if config is not None else self.input_size
        return Naming(variant, self.input_size, native, self.num_classes)

    def record(self) -> dict[str, object]:
        """The model as the sidecar records it."""
        return {
            "variant": self.variant,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
            "labels": str(self.labels_file) if self.labels_file else None,
        }


def load_source(spec: ModelSpec) -> ModelSource:
    """Load ``spec``'s checkpoint (or random weights when ``weights`` is None) and fuse it."""
    variant = _variant_name(spec.variant)
    if spec.weights is None:
        model = shvit.create_model(variant, num_classes=spec.num_classes, seed=spec.random_seed)
    else:
        path = shvit.resolve_weights(variant, spec.weights) if str(spec.weights) == "imagenet" and variant != "auto" else Path(spec.weights)
        model = shvit.create_model(variant, weights=path, num_classes=spec.num_classes)
    native = shvit.get_variant(variant).config.img_size if variant != "auto" else model.config.img_size
    size = spec.input_size if spec.input_size is not None else native
    return _source(model, variant=variant, input_size=size, labels=spec.labels, weights_info=weights_record(model, spec.weights))


def source_from_module(module: nn.Module, *, labels: Path | Sequence[str] | None = None, input_size: int | None = None) -> ModelSource:
    """A model object (unfused or already fused, any head size) as an export source."""
    if not isinstance(module, nn.Module):
        raise ArgumentError(
            f"model must be an nn.Module, a checkpoint path or a variant name, not {type(module).__name__}", argument="model"
        )
    config = getattr(module, "config", None)
    if not isinstance(config, shvit.SHViTConfig):
        raise ArgumentError(f"model is a {type(module).__name__}, not an SHViT (shvit.create_model builds one)", argument="model")
    model = copy.deepcopy(module).eval()
    fused = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    variant = next((v.name for v in shvit.VARIANTS.values() if v.config == config.with_classes(1000)), "auto")
    size = input_size if input_size is not None else config.img_size
    return _source(model, variant=variant, input_size=size, labels=labels, weights_info=weights_record(module), fused=fused)


def weights_record(model: nn.Module, given: str | Path | None = None) -> dict[str, object]:
    """The sidecar's ``weights``: the checkpoint or seeded draw the tensors still match, else only their hash.

    ``sha256`` is always the file's (what ``shasum`` prints); ``state_sha256`` hashes the tensors, so an
    in-memory model changed since loading (fine-tuned) is recorded as exactly that, never as its checkpoint.
    """
    origin = shvit.origin_of(model)
    if origin is not None:
        record = origin.record()
        if given is not None and str(given) == "imagenet":
            record["source"] = "imagenet"
        return record
    before = getattr(model, shvit.provenance.ORIGIN_ATTRIBUTE, None)
    changed = f", changed since {'loaded from ' + before.source if before.path else 'its random initialisation'}" if before else ""
    return {"source": f"in-memory {type(model).__name__}{changed}", "state_sha256": shvit.provenance.state_sha256(model)}


def _source(
    model: nn.Module,
    *,
    variant: str,
    input_size: int,
    labels: Path | Sequence[str] | None,
    weights_info: dict[str, object],
    fused: bool = False,
) -> ModelSource:
    check_input_size(input_size)
    with torch.no_grad():
        num_classes = int(model(torch.zeros(1, 3, input_size, input_size)).shape[-1])
    if isinstance(labels, (str, Path)):
        names, labels_file = read_labels(Path(labels), num_classes=num_classes), Path(labels)
    elif labels is not None:
        names, labels_file = validate_labels(list(labels), num_classes=num_classes), None
    else:
        names, labels_file = default_labels(num_classes), None
    deploy = model if fused else shvit.reparameterize(model)
    return ModelSource(
        variant=variant,
        input_size=input_size,
        reference=model,
        deploy=deploy,
        pixel_model=shvit.PixelInput(cast("shvit.SHViT", deploy)).eval(),  # load_source and source_from_module give SHViTs
        labels=names,
        weights_info=weights_info,
        labels_file=labels_file,
    )


def _variant_name(variant: str) -> str:
    if variant == "auto":
        return variant
    try:
        return shvit.get_variant(variant).name
    except ValueError as exc:
        raise ArgumentError(str(exc), argument="variant") from None
