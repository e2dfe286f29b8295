"""The PyTorch side of every export: the published network as reference, and its deploy form.

Fusion happens here, after the checkpoint is loaded, never before.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import shvit
from convert.config import ExportConfig
from convert.labels import imagenet_labels, read_labels


@dataclass
class ModelSource:
    """Reference (unfused, normalised input) and deploy (fused, pixel input) forms of one model."""

    variant: str
    input_size: int
    reference: nn.Module
    deploy: nn.Module
    pixel_model: nn.Module
    labels: list[str]
    weights_info: dict[str, str]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @torch.no_grad()
    def reference_logits(self, pixels: np.ndarray, *, batch: int = 16) -> np.ndarray:
        """Logits of the published network on uint8 NHWC pixels, through the shared calib normalisation."""
        from calib import normalize

        outs = [self.reference(torch.from_numpy(normalize(pixels[i : i + batch]))).numpy() for i in range(0, len(pixels), batch)]
        return np.concatenate(outs).astype(np.float32)


def load_source(config: ExportConfig, *, random_init: bool = False) -> ModelSource:
    weights = None if random_init else config.weights
    if weights is None:
        info = {"source": "random initialisation (not for deployment)"}
        model = shvit.create_model(config.variant, num_classes=config.num_classes)
    else:
        path = shvit.resolve_weights(config.variant, weights) if str(weights) == "imagenet" and config.variant != "auto" else weights
        model = shvit.create_model(config.variant, weights=path, num_classes=config.num_classes)
        info = {"source": str(weights), "path": str(path), "sha256": shvit.weights.sha256_of(Path(path))}
    num_classes = model.config.num_classes
    labels = read_labels(config.labels, num_classes=num_classes) if config.labels else _default_labels(num_classes)
    deploy = shvit.reparameterize(model)
    return ModelSource(
        variant=config.variant, input_size=config.input_size, reference=model, deploy=deploy,
        pixel_model=shvit.PixelInput(deploy).eval(), labels=labels, weights_info=info,
    )


def _default_labels(num_classes: int) -> list[str]:
    return imagenet_labels() if num_classes == 1000 else [f"class_{i}" for i in range(num_classes)]
