"""What Xcode's model page and an app can read from the package: descriptions and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convert.io.sidecar import toolkit_version
from shvit.config import Preprocessing
from shvit.provenance import weights_digest

AUTHOR = "SHViT by Seokju Yun and Youngmin Ro (CVPR 2024); converted with shvit-mobile"
LICENSE = (
    "Model architecture and released weights: see github.com/ysj9909/SHViT for their license; "
    "converted with shvit-mobile (MIT). Fine-tuned weights: their owner's terms."
)
META_PREFIX = "shvit."


@dataclass(frozen=True)
class PackageInfo:
    """Facts recorded in the package; ``weights`` is the sidecar's weights record (source, sha256)."""

    variant: str
    input_size: int
    precision: str
    num_classes: int
    min_ios: str
    weights: dict[str, Any] = field(default_factory=dict)
    calibration: str | None = None


def apply_metadata(mlmodel: Any, info: PackageInfo, *, image_input: str, logits_output: str) -> None:
    """Fill the MLModel's descriptions and user-defined metadata in place."""
    import torch

    from convert.coreml.ctimport import import_coremltools

    ct = import_coremltools()

    name = f"SHViT-{info.variant.upper()}" if info.variant != "auto" else "SHViT"
    mlmodel.short_description = (
        f"{name} image classifier ({info.num_classes} classes, {info.precision}). Takes a "
        f"{info.input_size}x{info.input_size} RGB image; ImageNet normalisation is built in."
    )
    mlmodel.author = AUTHOR
    mlmodel.license = LICENSE
    mlmodel.version = toolkit_version()
    crop = Preprocessing(input_size=info.input_size).crop_fraction
    mlmodel.input_description[image_input] = (
        f"RGB image, {info.input_size}x{info.input_size}, normalisation built in. Evaluation crop: the central "
        f"{crop * 100:g}% square (Vision: regionOfInterest inset {(1 - crop) * 50:g}% per side, then .centerCrop)."
    )
    mlmodel.output_description["classLabel"] = "Most likely class"
    mlmodel.output_description["classLabel_probs"] = "Probability of every class (softmax of logits)"
    mlmodel.output_description[logits_output] = "Class scores before the softmax (what PyTorch's model returns)"
    user = mlmodel.user_defined_metadata
    user["com.github.apple.coremltools.source"] = f"torch=={torch.__version__.split('+')[0]}"
    user["com.github.apple.coremltools.version"] = ct.__version__
    for key, value in user_metadata(info).items():
        user[key] = value


def user_metadata(info: PackageInfo) -> dict[str, str]:
    """``shvit.*`` keys: everything needed to trace a package to its weights and reproduce it."""
    preprocessing = Preprocessing(input_size=info.input_size)
    meta = {
        "variant": info.variant,
        "input_size": str(info.input_size),
        "num_classes": str(info.num_classes),
        "mean": ",".join(f"{m:g}" for m in preprocessing.mean),
        "std": ",".join(f"{s:g}" for s in preprocessing.std),
        "precision": info.precision,
        "min_ios": info.min_ios,
        "weights_source": info.weights.get("source", "unknown"),
        "weights_sha256": weights_digest(info.weights),
        "toolkit_version": toolkit_version(),
    }
    if info.calibration:
        meta["calibration"] = info.calibration
    return {META_PREFIX + k: v for k, v in meta.items()}
