"""The benchmark: export (or reuse) every target, check all against PyTorch at once, time each.

Exports go through :func:`convert.api.pipeline.run_export` (the same path as ``shvit-convert``);
parity and accuracy through :func:`convert.validate.checker.check_artifacts` (the same as
``shvit-check``), so a benchmark row and a user's own check can never disagree. Which targets,
precisions and baselines exist comes from the target registry.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shvit
from convert import targets
from convert.api.pipeline import run_export
from convert.bench.baselines import Baseline, baselines_for, export_baseline
from convert.bench.latency import PYTORCH, Latency, LatencyUnavailable, host_description, measure
from convert.config import (
    DEFAULT_CALIB_COUNT, ExportOptions, ExportPlan, ModelSpec, OutputSpec, check_input_size, default_input_size, plan,
)
from convert.errors import ArgumentError, ConvertError, NotBuiltYet, UsageError
from convert.validate.images import EvalImages, check_image_folders, check_image_options, load_images
from convert.io.scratch import Scratch
from convert.io.sidecar import read_sidecar
from convert.io.staging import check_output_dir
from convert.source import ModelSource, load_source
from convert.validate.accuracy import Accuracy
from convert.validate.artifact_info import ArtifactInfo, inspect
from convert.validate.checker import check_artifacts, reference_runtime
from convert.validate.report import CRASH, ERROR, MISMATCH, ArtifactResult

Log = Callable[[str], None]
OURS, BASELINE, REFERENCE = "ours", "baseline", "reference"
EXPORTED, REUSED, NOT_BUILT, EXPORT_FAILED = "exported", "reused", "not built", "export failed"
VARIANT_NAMES = ("s1", "s2", "s3", "s4", "auto")
DEFAULT_RUNS = 50
DEFAULT_WARMUP = 10
DEFAULT_COUNT = 64
_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetSpec:
    target: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.target} {self.precision}"


def parse_target(text: str) -> TargetSpec:
    """``tflite`` or ``tflite:int8`` → a validated target/precision pair."""
    name, _, precision = text.strip().lower().partition(":")
    if name not in targets.names():
        raise ArgumentError(f"unknown target {name!r} in {{target={text}}}: choose one of {', '.join(targets.names())} "
                            "(optionally :precision)", argument="target")
    target = targets.get(name)
    spec = TargetSpec(name, targets.resolve_precision(target, precision or None))
    targets.require_toolchain(target)
    return spec


def default_targets() -> tuple[str, ...]:
    """Every target whose toolchain is installed here."""
    return tuple(t.name for t in targets.available() if not targets.missing_toolchain(t.name))


@dataclass
class BenchSettings:
    out_dir: Path
    weights: str | None
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    threads: int = 1
    input_size: int | None = None
    labels: Path | None = None
    calib_dir: Path | None = None
    calib_count: int = DEFAULT_CALIB_COUNT
    reexport: bool = False
    baselines: bool = True
    progress: bool = False


@dataclass
class BenchRow:
    """One line of the report: a model in its runtime, with everything measured about it."""

    variant: str
    name: str
    target: str
    precision: str
    kind: str
    export: str
    export_detail: str = ""
    artifact: Path | None = None
    check: ArtifactResult | None = None
    latency: Latency | None = None
    latency_note: str = ""
    speedup: float | None = None
    accuracy: Accuracy | None = None
    reference_accuracy: Accuracy | None = None
    macs: int | None = None
    size_bytes: int | None = None
    ops: int | None = None
    not_comparable: str = ""

    @property
    def parity(self) -> str:
        if self.kind == REFERENCE:
            return "reference"
        if self.not_comparable:
            return "n/a"
        return self.check.status if self.check else "-"

    @property
    def ok(self) -> bool:
        """Whether this row is what it should be: our exports must exist and pass; baselines are only measured."""
        return self.kind != OURS or (self.export in (EXPORTED, REUSED) and self.check is not None and self.check.passed)


@dataclass
class BenchResult:
    rows: list[BenchRow]
    labelled: bool
    host: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[BenchRow]:
        return [r for r in self.rows if not r.ok]


def export_plan(spec: TargetSpec, settings: BenchSettings, variant: str) -> ExportPlan:
    """Validated up front for every variant × target, so a bad combination fails before any slow work."""
    options = ExportOptions(target=spec.target, precision=spec.precision, calib=settings.calib_dir, calib_count=settings.calib_count)
    return plan(options, OutputSpec(out_dir=settings.out_dir / "exports" / variant, force=True, progress=settings.progress))


def reusable(export: ExportPlan, source: ModelSource) -> bool:
    """An earlier export of the same weights and settings, untouched since (its sidecar's hash matches)."""
    path = export.output.out_dir / export.artifact_name(source.variant)
    if not path.exists():
        return False
    sidecar, _ = read_sidecar(path)
    if sidecar is None or not source.weights_info.get("sha256"):
        return False
    recorded = sidecar.get("config", {})
    wanted = json.loads(json.dumps({**source.record(), **export.record()}, default=str))  # as the sidecar holds it (tuples as lists)
    if not export.calibrated:
        wanted = {k: v for k, v in wanted.items() if k not in ("calib_dir", "calib_count")}
    return all(recorded.get(k) == v for k, v in wanted.items()) and sidecar.get("weights", {}).get("sha256") == source.weights_info["sha256"]


def export_ours(export: ExportPlan, source: ModelSource, *, images_dir: Path | None, settings: BenchSettings, scratch: Scratch,
                log: Log) -> tuple[str, str]:
    """(status, detail) of one export through the pipeline; a failed parity keeps the artifact (the check reports it)."""
    path = export.output.out_dir / export.artifact_name(source.variant)
    if not settings.reexport and reusable(export, source):
        log(f"→ reusing {path} (same weights and settings; --reexport to redo)")
        return REUSED, ""
    log(f"→ exporting {export.target.name} {export.precision}")
    try:
        result = run_export(export, source, images=images_dir, scratch=scratch)
    except NotBuiltYet as exc:
        return NOT_BUILT, str(exc)
    except ConvertError as exc:
        return EXPORT_FAILED, str(exc)
    if not result.passed:
        failures = [f"{name} {detail} ✗" for name, ok, detail in result.tolerance.checklist(result.parity) if not ok]
        return EXPORTED, f"parity failed at export: {'; '.join(failures)}"
    return EXPORTED, ""


def export_plain(baseline: Baseline, source: ModelSource, folder: Path, *, scratch: Scratch, log: Log) -> tuple[str, str, Path | None]:
    """(status, detail, path) of one plain baseline conversion, written next to our exports."""
    path = folder / baseline.filename(source.variant)
    try:
        export_baseline(baseline, source, path, scratch=scratch, log=log)
    except NotBuiltYet as exc:
        return NOT_BUILT, str(exc), None
    except ConvertError as exc:
        return EXPORT_FAILED, str(exc), None
    return EXPORTED, baseline.description, path


def _latency(row: BenchRow, *, settings: BenchSettings, input_size: int, scratch: Scratch, log: Log, **model: Any) -> None:
    if row.check is not None and row.check.status in (CRASH, MISMATCH, ERROR):
        row.latency_note = f"not measured: {row.check.status} in the parity check"
        return
    log(f"→ timing {row.name} ({settings.warmup} warm-up + {settings.runs} runs, {settings.threads} thread(s))")
    try:
        row.latency = measure(row.target, input_size=input_size, runs=settings.runs, warmup=settings.warmup,
                              threads=settings.threads, scratch=scratch, **model)
    except LatencyUnavailable as exc:
        row.latency_note = str(exc)


def bench_variant(
    variant: str, specs: list[TargetSpec], *, source: ModelSource, images: EvalImages, images_dir: Path | None,
    settings: BenchSettings, scratch: Scratch, log: Log,
) -> list[BenchRow]:
    """Every row for one variant: the PyTorch reference, our exports, then the plain baselines."""
    size = source.input_size
    macs = shvit.count_macs(source.reference, size)
    rows = [BenchRow(variant, "pytorch (reference)", PYTORCH, "fp32", REFERENCE, "reference", reference_runtime(), macs=macs)]
    planned: list[tuple[BenchRow, Path | None]] = []
    for spec in specs:
        export = export_plan(spec, settings, variant)
        status, detail = export_ours(export, source, images_dir=images_dir, settings=settings, scratch=scratch, log=log)
        path = export.output.out_dir / export.artifact_name(source.variant) if status in (EXPORTED, REUSED) else None
        planned.append((BenchRow(variant, spec.label, spec.target, spec.precision, OURS, status, detail, path, macs=macs), path))
    if settings.baselines:
        folder = settings.out_dir / "exports" / variant
        for baseline in baselines_for(s.target for s in specs):
            status, detail, path = export_plain(baseline, source, folder, scratch=scratch, log=log)
            row = BenchRow(variant, baseline.label, baseline.target.name, baseline.precision, BASELINE, status, detail, path,
                           macs=macs, not_comparable=baseline.not_comparable if path else "")
            planned.append((row, path))
    reference = source.reference_logits(images.pixels, progress=settings.progress)
    infos: dict[Path, ArtifactInfo] = {}
    for row, path in planned:
        if path is not None:
            info = infos[path] = inspect(path, scratch=scratch, read_graph=True)
            row.size_bytes, row.ops = info.size_bytes, info.ops
    comparable = [infos[path] for row, path in planned if path is not None and not row.not_comparable]
    report = check_artifacts(comparable, source=source, images=images, scratch=scratch, threads=settings.threads,
                             progress=settings.progress, reference=reference)
    results = {r.path: r for r in report.artifacts}
    weights = source.weights_info.get("path")
    _latency(rows[0], settings=settings, input_size=size, scratch=scratch, log=log, variant=variant, weights=weights)
    rows[0].accuracy = rows[0].reference_accuracy = report.reference_accuracy
    for row, path in planned:
        if path is not None:
            row.check = results.get(path)
            if row.check is not None:
                row.accuracy, row.reference_accuracy = row.check.accuracy, report.reference_accuracy
            _latency(row, settings=settings, input_size=size, scratch=scratch, log=log, artifact=path)
        rows.append(row)
    if rows[0].latency is not None:
        for row in rows:
            if row.latency is not None:
                row.speedup = rows[0].latency.median_ms / row.latency.median_ms
    return rows


def run_bench(
    variants: Sequence[str], target_specs: Sequence[str], *, settings: BenchSettings, random_init: bool = False,
    images_dir: Path | None = None, labels_from_folders: bool = False, labels_file: Path | None = None, count: int = DEFAULT_COUNT,
) -> BenchResult:
    """Every variant × ``TARGET[:PRECISION]``, checked and timed; every argument is validated before any slow work."""
    log = _logger.info
    for name in variants:
        if name not in VARIANT_NAMES:
            raise UsageError(f"unknown variant {name!r}: choose from {', '.join(VARIANT_NAMES)}", argument="variant")
    specs = list(dict.fromkeys(parse_target(t) for t in target_specs))
    check_image_options(images=images_dir, labels_from_folders=labels_from_folders, labels_file=labels_file)
    for argument, value, low in (("runs", settings.runs, 1), ("warmup", settings.warmup, 0), ("threads", settings.threads, 1),
                                 ("count", count, 0)):
        if value < low:
            raise UsageError(f"{{{argument}}} must be at least {low}, not {value}", argument=argument)
    if random_init and "auto" in variants:
        raise UsageError("{variant=auto} infers the architecture from {weights=PATH}; it cannot be combined with {random_init}",
                         argument="variant")
    if not random_init and settings.weights != "imagenet" and len(variants) > 1:
        raise UsageError(f"{{weights={settings.weights}}} is one checkpoint: benchmark one variant with it, or use {{weights=imagenet}}",
                         argument="weights")
    calibrated = [spec for spec in specs if spec.precision in targets.get(spec.target).calibrated]
    check_image_folders({"calib": settings.calib_dir if calibrated else None, "images": images_dir})
    check_output_dir(settings.out_dir)
    sizes = {name: check_input_size(settings.input_size or default_input_size(name)) for name in variants}
    for name in variants:
        for spec in specs:
            export_plan(spec, settings, name)  # bad combinations fail here, before any work
    if settings.calib_dir is not None and calibrated:
        import calib

        for size in sorted(set(sizes.values())):  # decoded once here (and cached): a folder of bad files fails before any export
            calib.load_folder(settings.calib_dir, size=size, count=settings.calib_count, seed=0)
    rows: list[BenchRow] = []
    labelled = False
    with Scratch.open() as scratch:
        for name in variants:
            log(f"━━ SHViT-{name.upper()} ━━")
            spec = ModelSpec(variant=name, weights=None if random_init else settings.weights, labels=settings.labels,
                             input_size=sizes[name])
            source = load_source(spec)
            images = load_images(images_dir, size=sizes[name], count=count, class_names=source.labels,
                                 labels_from_folders=labels_from_folders, labels_file=labels_file,
                                 sorted_order=settings.labels is None and source.num_classes == 1000, progress=settings.progress)
            labelled = images.truth is not None
            log(f"→ images: {images.description}")
            rows += bench_variant(name, specs, source=source, images=images, images_dir=images_dir, settings=settings,
                                  scratch=scratch, log=log)
    record = {"variants": list(variants), "targets": [s.label for s in specs],
              "weights": settings.weights if not random_init else "random init", "images": str(images_dir) if images_dir else "generated",
              "count": count, "runs": settings.runs, "warmup": settings.warmup, "threads": settings.threads,
              "baselines": settings.baselines, "labelled": labelled}
    return BenchResult(rows, labelled, host_description(), record)
