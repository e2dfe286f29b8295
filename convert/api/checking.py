"""``convert.check``: exported models against the PyTorch reference, as ``shvit-check`` does."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from convert.api.model import Labels, load_model, model_spec
from convert.config import ModelSpec
from convert.errors import UsageError
from convert.io.scratch import Scratch
from convert.validate.artifact_info import ArtifactInfo, inspect
from convert.validate.checker import DEFAULT_COUNT, artifact_paths, check_artifacts, resolve_input_size, sidecar_labels
from convert.validate.images import check_image_folders, check_image_options, load_images
from convert.validate.per_layer import PER_LAYER_IMAGES, check_per_layer
from convert.validate.per_layer import per_layer as per_layer_report
from convert.validate.report import CheckReport

_logger = logging.getLogger(__name__)


def check(
    artifacts: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    reference: nn.Module | str | os.PathLike[str],
    weights: str | os.PathLike[str] | None = "imagenet",
    images: str | os.PathLike[str] | None = None,
    labels: Labels = None,
    labels_from_folders: bool = False,
    labels_file: str | os.PathLike[str] | None = None,
    count: int = DEFAULT_COUNT,
    input_size: int | None = None,
    threads: int | None = None,
    per_layer: bool = False,
    progress: bool = False,
    seed: int | None = None,
) -> CheckReport:
    """Run every artifact in its own runtime on the same images as ``reference`` and judge it.

    ``reference`` is what the artifacts were exported from, given as for :func:`convert.export`
    (a model object, a checkpoint path, or a variant name with ``weights``). ``images`` is a folder
    of photos (default: generated natural-looking images); with ``labels_from_folders`` (class =
    sub-folder) or ``labels_file`` the report has accuracy too. ``labels`` are the model's class
    names (default: those named in the artifacts' sidecars, else ImageNet-1k). The report's
    ``passed`` is False if any artifact fails, crashes or does not fit the reference. ``per_layer``
    (int8 artifacts only) adds each op's error against the artifact's float twin (``report.per_layer``).
    ``weights=None`` checks a random-weights try-out: the draw is ``seed``, by default the one its sidecar records.
    """
    paths = [Path(artifacts)] if isinstance(artifacts, (str, os.PathLike)) else [Path(a) for a in artifacts]
    if not paths:
        raise UsageError("no artifacts to check: pass exported model files", argument="artifacts")
    check_image_options(images=images, labels_from_folders=labels_from_folders, labels_file=labels_file)
    if count < 0:
        raise UsageError(f"must be 0 (all images) or more, not {count}", argument="count")
    if threads is not None and threads < 1:
        raise UsageError(f"must be at least 1, not {threads}", argument="threads")
    paths = artifact_paths(paths)
    images_dir = Path(images) if images is not None else None
    check_image_folders({"images": images_dir})
    spec = model_spec(reference, weights=weights, num_classes=1000, labels=labels, input_size=input_size, seed=seed)
    with Scratch.open() as scratch:
        _logger.info(f"→ reading {len(paths)} artifact{'s' if len(paths) > 1 else ''}")
        infos = [inspect(p, scratch=scratch) for p in paths]
        if per_layer:
            check_per_layer(infos)
        if spec is not None and spec.weights is None and spec.seed is None:
            spec = dataclasses.replace(spec, seed=recorded_seed(infos))
        variant = spec.variant if spec is not None else "auto"
        size, size_origin = resolve_input_size(input_size, infos, variant)
        _logger.info(f"→ model at {size}×{size} (input size from {size_origin})")
        source = load_model(reference, _sized(spec, size), labels=labels, input_size=size)
        named = sidecar_labels(infos, num_classes=source.num_classes) if labels is None else None
        if named is not None:
            source.labels_file, source.labels = named
            _logger.info(f"→ class names from {named[0]} (named in the artifacts' sidecars)")
        images_found = load_images(
            images_dir,
            size=size,
            count=count,
            class_names=source.labels,
            labels_from_folders=labels_from_folders,
            labels_file=Path(labels_file) if labels_file is not None else None,
            sorted_order=labels is None and named is None and source.num_classes == 1000,
            progress=progress,
        )
        _logger.info(f"→ images: {images_found.description}")
        report = check_artifacts(infos, source=source, images=images_found, scratch=scratch, threads=threads, progress=progress)
        if per_layer:
            pixels = images_found.pixels[:PER_LAYER_IMAGES]
            for info in infos:
                _logger.info(f"→ per-layer: {info.path.name} op by op on {len(pixels)} images")
                report.per_layer.append(per_layer_report(info, source, pixels, scratch=scratch, log=_logger.info))
        return report


def recorded_seed(infos: Sequence[ArtifactInfo]) -> int | None:
    """The random draw the artifacts' sidecars record, when they agree on one (else the default draw)."""
    seeds = {(info.sidecar or {}).get("weights", {}).get("seed") for info in infos} - {None}
    if len(seeds) > 1:
        raise UsageError(
            f"the artifacts were exported from different random draws (seeds {', '.join(map(str, sorted(seeds)))}): "
            "check them one at a time",
            argument="artifacts",
        )
    return seeds.pop() if seeds else None


def _sized(spec: ModelSpec | None, size: int) -> ModelSpec | None:
    """``spec`` at the input size the artifacts agree on."""
    return dataclasses.replace(spec, input_size=size) if spec is not None else None
