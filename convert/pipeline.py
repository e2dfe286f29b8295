"""One export, staged: load and fuse → export (target package) → validate against PyTorch → commit.

Each target lives in its own package exposing ``export(source, config, staging, *, log) -> dict``
(metadata for the sidecar) and ``EXTRA_FILES(config) -> list[str]``; nothing here knows formats.
"""
from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convert.artifacts import check_output_dir, staged_output, write_sidecar
from convert.config import ExportConfig
from convert.errors import ConvertError, NotBuiltYet, ToleranceError
from shvit.errors import WeightsError
from convert.source import ModelSource, load_source
from convert.validate.compare import ParityReport, check, compare, enforce, format_checklist, tolerance_for
from convert.validate.runner import run_artifact

TARGET_MODULES: dict[str, str] = {
    "onnx": "convert.onnx.export",
    "coreml": "convert.coreml.export",
    "tflite": "convert.tflite.export",
}
DEFAULT_CHECK_COUNT = 32

Log = Callable[[str], None]


@dataclass
class CheckImages:
    """Pixels the parity check runs on, and where they came from (said in the output)."""

    pixels: np.ndarray
    description: str


@dataclass
class ExportOutcome:
    artifact: Path
    files: list[Path]
    report: ParityReport
    runtime: str
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)


def check_images(config: ExportConfig, *, images_dir: Path | None, count: int = DEFAULT_CHECK_COUNT) -> CheckImages:
    """Real photos when the user gave a folder (``--images``, else ``--calib``), else generated ones."""
    import calib

    folder = images_dir or config.calib_dir
    if folder is not None:
        # the calibration folder's bad files are reported once, when the export loads it for int8
        quiet = images_dir is None and config.precision == "int8"
        found = calib.load_folder(folder, size=config.input_size, count=count, seed=0, progress=config.progress,
                                  warn=(lambda _message: None) if quiet else None)
        return CheckImages(found.pixels, f"{len(found.pixels)} images from {folder}")
    return CheckImages(
        calib.synthetic_images(count, config.input_size, seed=0),
        f"{count} generated natural-looking images (pass --images DIR to check on your own photos)",
    )


def run_export(
    config: ExportConfig,
    *,
    images_dir: Path | None = None,
    random_init: bool = False,
    log: Log = print,
    source: ModelSource | None = None,
) -> ExportOutcome:
    """Export, check and commit one artifact; raises ToleranceError (artifact kept, marked) on failed parity."""
    target = _target_module(config.target)
    artifact_name = config.artifact_path.name
    names = [artifact_name, f"{artifact_name}.json", *target.EXTRA_FILES(config)]
    preflight(config, images_dir=images_dir, names=names, random_init=random_init or source is not None)
    started = time.perf_counter()
    images = check_images(config, images_dir=images_dir)
    with staged_output(config.out_dir, names, force=config.force) as staging:
        if source is None:
            log(f"→ loading SHViT-{config.variant.upper()} ({config.weights or 'random init'}) and fusing BatchNorms")
            source = load_source(config, random_init=random_init)
        metadata = target.export(source, config, staging, log=log)
        staged = staging.path(artifact_name)
        for extra in target.EXTRA_FILES(config):
            staging.path(extra)
        log(f"→ checking parity against PyTorch on {images.description}")
        logits, runtime = run_artifact(staged, images.pixels)
        report = compare(source.reference_logits(images.pixels), logits)
        tolerance = tolerance_for(config.target, config.precision)
        if random_init and tolerance.top1 is not None:
            tolerance = dataclasses.replace(tolerance, top1=None)
            log("  · top-1 agreement reported, not enforced: random weights give near-tied logits, so it measures chance")
        passed = all(ok for _, ok, _ in check(report, tolerance))
        log(f"  runtime: {runtime}")
        for line in format_checklist(report, tolerance):
            log(line)
        parity = {"passed": passed, "runtime": runtime, "images": images.description, **report.as_dict()}
        write_sidecar(
            staging.path(f"{artifact_name}.json"), artifact=staged, config=_config_record(config),
            weights=source.weights_info, extra={"parity": parity, "export": metadata},
        )
        files = staging.commit()
        log(f"✓ wrote {config.artifact_path} in {time.perf_counter() - started:.1f} s" if passed else f"✗ wrote {config.artifact_path} (parity FAILED, marked in its .json)")
    outcome = ExportOutcome(config.artifact_path, files, report, runtime, passed, metadata)
    if not passed:
        try:
            enforce(str(config.artifact_path), report, tolerance)
        except ToleranceError as exc:
            exc.outcome = outcome  # type: ignore[attr-defined]
            raise
    return outcome


def preflight(config: ExportConfig, *, images_dir: Path | None, names: list[str], random_init: bool) -> None:
    """Every check that needs no work, before any work: a bad argument costs the user nothing."""
    if not random_init and config.weights not in (None, "imagenet"):
        weights = Path(config.weights)
        if not weights.exists():
            raise WeightsError(f"weights file {weights} does not exist: pass the path of a downloaded .pth/.bin/.safetensors file")
        if weights.is_dir():
            raise WeightsError(f"weights path {weights} is a directory: pass the checkpoint file inside it")
    check_image_folders({"--calib": config.calib_dir, "--images": images_dir})
    if config.labels is not None and not config.labels.is_file():
        raise ConvertError(f"labels file {config.labels} does not exist or is not a file: pass a text file with one label per line")
    check_output_dir(config.out_dir)
    existing = [config.out_dir / n for n in names if (config.out_dir / n).exists()]
    if existing and not config.force:
        raise ConvertError(f"{existing[0]} already exists: pass --force to replace it, or choose another --out")


def check_image_folders(folders: dict[str, Path | None]) -> None:
    """Each given image folder exists, can be listed and holds image files: a listing, no decoding."""
    import calib

    for option, folder in folders.items():
        if folder is None:
            continue
        if not Path(folder).is_dir():
            what = "is a file" if Path(folder).exists() else "does not exist"
            raise ConvertError(f"{option} folder {folder} {what}: pass a folder of images")
        try:
            calib.scan_folder(folder)
        except calib.CalibError as exc:
            raise ConvertError(f"{option}: {exc}") from None


def _target_module(name: str):
    module = TARGET_MODULES[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise NotBuiltYet(f"--target {name} is not built yet in this version; use --target onnx for now") from None
        raise


def _config_record(config: ExportConfig) -> dict[str, Any]:
    return {
        "variant": config.variant, "target": config.target, "precision": config.precision,
        "input_size": config.input_size, "num_classes": config.num_classes, "labels": str(config.labels) if config.labels else None,
        "calib_dir": str(config.calib_dir) if config.calib_dir else None, "calib_count": config.calib_count,
        "min_ios": config.min_ios, "opset": config.opset, **config.extra,
    }
