"""What an ONNX user can read from the file itself: ``metadata_props``, ``doc_string`` and producer.

ONNX Runtime exposes these as ``session.get_modelmeta().custom_metadata_map``, Netron shows them, and
``onnx.load(path).metadata_props`` lists them, so an ``.onnx`` file that travels without its
``.json`` sidecar still says what it classifies, how to feed it and which weights it came from.
Every value is a string; ``shvit.labels`` and ``shvit.input`` are JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from convert.io.sidecar import toolkit_version
from shvit.config import Preprocessing
from shvit.provenance import weights_digest

META_PREFIX = "shvit."
PRODUCER = "shvit-mobile"
COMPUTE = {"fp32": "float32", "fp16": "float16 (float32 pixels in and logits out)"}


@dataclass(frozen=True)
class ModelInfo:
    """Facts recorded in the file; ``weights`` is the export's weights record (``source.weights_info``)."""

    variant: str
    precision: str
    input_size: int
    labels: Sequence[str]
    input_name: str
    output_name: str
    weights: Mapping[str, Any] = field(default_factory=dict)


def metadata_props(info: ModelInfo) -> dict[str, str]:
    """The ``shvit.*`` entries, in a fixed order (the file stays byte-identical from one export to the next)."""

    props = {
        "variant": info.variant,
        "precision": info.precision,
        "labels": json.dumps(list(info.labels), ensure_ascii=False),
        "input": json.dumps(input_description(info), ensure_ascii=False),
        "weights_sha256": weights_digest(info.weights),
        "toolkit_version": toolkit_version(),
    }
    return {META_PREFIX + k: v for k, v in props.items()}


def input_description(info: ModelInfo) -> dict[str, Any]:
    """How to feed the model: RGB pixels 0-255 as they are, NCHW; the normalisation is inside the graph."""
    pre = Preprocessing(input_size=info.input_size)
    return {
        "name": info.input_name,
        "dtype": "float32",
        "layout": "NCHW",
        "shape": ["batch", 3, info.input_size, info.input_size],
        "color": "RGB",
        "range": [0, 255],
        "normalization": (f"inside the model (mean {list(pre.mean)}, std {list(pre.std)} of the 0-1 scale): feed pixels 0-255 as they are"),
        "preprocessing": (
            f"resize the short side to {pre.resize_size} ({pre.interpolation}), centre-crop {info.input_size}x{info.input_size}"
        ),
    }


def doc_string(info: ModelInfo) -> str:
    """One paragraph for model viewers (Netron shows it as the model's description)."""
    name = f"SHViT-{info.variant.upper()}" if info.variant != "auto" else "SHViT"
    return (
        f"{name} image classifier, {len(info.labels)} classes, {info.precision} (computes in {COMPUTE.get(info.precision, info.precision)}). "
        f"Input '{info.input_name}': float32 RGB pixels 0-255, NCHW [batch, 3, {info.input_size}, {info.input_size}], "
        f"ImageNet normalisation inside the model. Output '{info.output_name}': class scores before the softmax. "
        f"Class names: metadata {META_PREFIX}labels (JSON list). SHViT by Seokju Yun and Youngmin Ro (CVPR 2024); "
        "converted with shvit-mobile."
    )
