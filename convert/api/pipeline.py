"""One export, in stages: load and fuse → export (the target's plugin) → validate against PyTorch → commit.

:func:`export` is the public entry point (``shvit-convert`` is a thin layer over it);
:func:`run_export` is the same pipeline for callers that already hold a loaded model and a scratch
folder (the benchmark). Nothing here knows a format: the target registry does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from convert.api.model import load_model, model_spec
from convert.config import DEFAULT_CALIB_COUNT, ExportOptions, ExportPlan, OutputSpec, plan
from convert.errors import ArgumentError, ToleranceError
from convert.io.scratch import Scratch
from convert.io.sidecar import sidecar_path, sidecar_record, write_sidecar
from convert.io.staging import check_output_dir, refuse_existing, staged_output
from convert.parity import ParityReport, Tolerance, compare
from convert.source import ModelSource
from convert.targets import ExportContext
from convert.validate.images import check_image_folders, load_images
from convert.validate.runner import run_artifact
from shvit.errors import WeightsError

DEFAULT_CHECK_COUNT = 32
RANDOM_WEIGHTS_NOTE = "  · top-1 agreement reported, not enforced: random weights give near-tied logits, so it measures chance"

Log = Callable[[object], None]
_logger = logging.getLogger(__name__)
_CONVERTING = threading.Lock()
"""Conversions run one at a time per process: torch.onnx.export keeps its state in module globals and the
converters' warning filters are process-wide. Loading, parity runs and commits of two exports still overlap."""


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote and how it compared with PyTorch."""

    path: Path
    """The artifact."""
    files: list[Path]
    """Everything written: the artifact, its ``.json`` sidecar and the target's extra files."""
    target: str
    precision: str
    passed: bool
    parity: ParityReport
    tolerance: Tolerance
    runtime: str
    """The runtime the parity check ran the artifact in."""
    sidecar: dict[str, Any] = field(default_factory=dict)
    checklist: list[str] = field(default_factory=list)
    """The ✓/✗ lines of the parity check, as ``shvit-convert`` prints them."""

    @property
    def sidecar_path(self) -> Path:
        """The ``<artifact>.json`` file that :attr:`sidecar` was written to."""
        return sidecar_path(self.path)


def export(
    model: nn.Module | str | os.PathLike[str],
    *,
    target: str,
    precision: str | None = None,
    out_dir: str | os.PathLike[str] = "exports",
    labels: str | os.PathLike[str] | Sequence[str] | None = None,
    calib: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    input_size: int | None = None,
    force: bool = False,
    strict: bool = False,
    progress: bool = False,
    weights: str | os.PathLike[str] | None = "imagenet",
    num_classes: int = 1000,
    calib_count: int = DEFAULT_CALIB_COUNT,
    seed: int | None = None,
    name: str | None = None,
    **target_options: Any,
) -> ExportResult:
    """Export ``model`` for ``target`` exactly as ``shvit-convert`` does: parity check, sidecar, atomic write.

    ``model`` is an ``nn.Module`` (an SHViT, fused or not, any head size), a checkpoint path, or a
    variant name (``"s1"``…``"s4"``) whose ``weights`` are a checkpoint path, ``"imagenet"`` (the
    released weights, downloaded once) or None (random; for trying the toolchain only: drawn with
    ``seed``, default :data:`shvit.RANDOM_INIT_SEED`, recorded in the sidecar so a check can redraw them).
    ``labels`` is a file with one class name per line or a list of names. ``calib`` is a folder
    of photos for ``precision="int8"``; parity runs on ``images`` (default: ``calib``, else
    generated natural-looking images). Target options (``min_ios="17"`` for Core ML) go as keywords.
    ``name`` is the artifact's file name (``"my_model"`` or ``"my_model.onnx"``) inside ``out_dir``; by
    default it says variant, precision and, when they are not the variant's own, input size and classes.

    A failed parity returns ``passed=False`` with the artifact written and marked failed in its
    sidecar; ``strict=True`` raises :class:`ToleranceError` instead, its ``result`` holding this result.
    """
    options = ExportOptions(target=target, precision=precision, calib=_path(calib), calib_count=calib_count, target_options=target_options)
    output = OutputSpec(out_dir=Path(out_dir), force=force, progress=progress)
    export_plan = plan(options, output, name=name)
    images_dir = _path(images)
    spec = model_spec(model, weights=weights, num_classes=num_classes, labels=labels, input_size=input_size, seed=seed)
    preflight(export_plan, images=images_dir, weights=spec.weights if spec else None, labels=labels)
    naming = spec.naming() if spec is not None else None
    named_early = naming is not None or export_plan.name is not None  # refused before loading when the names are known
    if named_early:
        refuse_existing(output.out_dir, export_plan.file_names(naming), force=force)
    source = load_model(model, spec, labels=labels, input_size=input_size)
    if not named_early:
        refuse_existing(output.out_dir, export_plan.file_names(source.naming), force=force)
    with Scratch.open() as scratch:
        result = run_export(export_plan, source, images=images_dir, scratch=scratch)
    if strict and not result.passed:
        ToleranceError.check(str(result.path), result.parity, result.tolerance, result=result)
    return result


def run_export(
    export_plan: ExportPlan,
    source: ModelSource,
    *,
    images: Path | None,
    scratch: Scratch,
) -> ExportResult:
    """Export, check and commit one artifact for a loaded ``source``; a failed parity is a result, not an error.

    The output folder is checked by :func:`staged_output`; :func:`export` checks it before loading the model too.
    """
    log = _logger.info
    target, output = export_plan.target, export_plan.output
    names = export_plan.file_names(source.naming)
    artifact = output.out_dir / names[0]
    started = time.perf_counter()
    calib_pixels, calib_description = _calibration(export_plan, size=source.input_size)
    folder = images or export_plan.calib
    check = load_images(
        folder,
        size=source.input_size,
        count=DEFAULT_CHECK_COUNT,
        class_names=source.labels,
        progress=output.progress,
        quiet=images is None and export_plan.calibrated,
    )
    with staged_output(output.out_dir, names, force=output.force) as staging:
        context = ExportContext(
            source=source,
            precision=export_plan.precision,
            options=export_plan.options,
            stem=export_plan.stem(source.naming),
            scratch=scratch,
            calib_pixels=calib_pixels,
            calib_description=calib_description,
            progress=output.progress,
            log=log,
        )
        with _CONVERTING:
            metadata = target.export(context, staging)
        staged = staging.path(names[0])
        for extra in names[2:]:
            staging.path(extra)
        log(f"→ checking parity against PyTorch on {check.description}")
        logits, runtime = run_artifact(staged, check.pixels, scratch=scratch)
        report = compare(source.reference_logits(check.pixels, progress=output.progress), logits)
        tolerance = target.tolerances[export_plan.precision]
        notes = []
        if source.random_weights and tolerance.top1 is not None:
            tolerance = dataclasses.replace(tolerance, top1=None)
            notes.append(RANDOM_WEIGHTS_NOTE)
        passed = tolerance.passes(report)
        checklist = [*notes, *tolerance.format_checklist(report)]
        log(f"  runtime: {runtime}")
        for line in checklist:
            log(line)
        parity = {"passed": passed, "runtime": runtime, "images": check.description, **report.as_dict()}
        record = sidecar_record(
            artifact=staged,
            config={**source.record(), **export_plan.record()},
            weights=source.weights_info,
            extra={"parity": parity, "export": metadata.as_dict()},
        )
        write_sidecar(staging.path(names[1]), record)
        files = staging.commit()
    seconds = time.perf_counter() - started
    contents = f": {metadata.contents}" if metadata.contents else ""
    log(
        f"✓ wrote {artifact}{contents} in {seconds:.1f} s"
        if passed
        else f"✗ wrote {artifact}{contents} (parity FAILED, marked in its .json)"
    )
    return ExportResult(
        path=artifact,
        files=files,
        target=target.name,
        precision=export_plan.precision,
        passed=passed,
        parity=report,
        tolerance=tolerance,
        runtime=runtime,
        sidecar=record,
        checklist=checklist,
    )


def preflight(
    export_plan: ExportPlan, *, images: Path | None, weights: str | Path | None, labels: str | os.PathLike[str] | Sequence[str] | None
) -> None:
    """Every check that needs no work, before any work: a bad argument costs the user nothing."""
    if weights is not None and str(weights) != "imagenet":
        path = Path(weights)
        if not path.exists():
            raise WeightsError(f"weights file {path} does not exist: pass the path of a downloaded .pth/.bin/.safetensors file")
        if path.is_dir():
            raise WeightsError(f"weights path {path} is a directory: pass the checkpoint file inside it")
    check_image_folders({"calib": export_plan.calib, "images": images})
    if isinstance(labels, (str, os.PathLike)) and not Path(labels).is_file():
        raise ArgumentError(
            f"labels file {labels} does not exist or is not a file: pass a text file with one label per line", argument="labels"
        )
    check_output_dir(export_plan.output.out_dir)


def _calibration(export_plan: ExportPlan, *, size: int) -> tuple[np.ndarray | None, str | None]:
    """Calibration pixels, loaded once for the target (None when the precision calibrates nothing)."""
    if not export_plan.calibrated or export_plan.calib is None:
        return None, None
    import calib

    _logger.info(f"→ loading up to {export_plan.calib_count} calibration images from {export_plan.calib}")
    found = calib.load_folder(export_plan.calib, size=size, count=export_plan.calib_count, progress=export_plan.output.progress)
    return found.pixels, f"{len(found.pixels)} images from {export_plan.calib.name}"


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)
