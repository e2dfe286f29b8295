"""One benchmark variant: export (or reuse) every target, check all against PyTorch at once, time each.

Exports go through :func:`convert.pipeline.run_export` (the same path as ``shvit-convert``);
parity and accuracy through :func:`convert.validate.check.check_artifacts` (the same as
``shvit-check``), so a benchmark row and a user's own check can never disagree.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convert.bench.baselines import Baseline, baselines_for, export_baseline
from convert.bench.latency import OFF_MACOS, Latency, LatencyUnavailable, measure
from convert.config import DEFAULT_PRECISION, PRECISIONS, TARGETS, ExportConfig
from convert.errors import ConvertError, NotBuiltYet, ToleranceError
from convert.source import ModelSource
from convert.validate.accuracy import Accuracy
from convert.validate.artifact_info import ArtifactInfo, inspect, read_sidecar
from convert.validate.check import EvalImages, check_artifacts, reference_logits, reference_runtime
from convert.validate.report import CRASH, ERROR, MISMATCH, ArtifactResult

Log = Callable[[str], None]
OURS, BASELINE, REFERENCE = "ours", "baseline", "reference"
EXPORTED, REUSED, NOT_BUILT, EXPORT_FAILED = "exported", "reused", "not built", "export failed"


@dataclass(frozen=True)
class TargetSpec:
    target: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.target} {self.precision}"


def parse_target(text: str) -> TargetSpec:
    """``tflite`` or ``tflite:int8`` → a validated target/precision pair."""
    target, _, precision = text.strip().lower().partition(":")
    if target not in TARGETS:
        raise ConvertError(f"unknown target {target!r} in --target {text}: choose one of {', '.join(TARGETS)} (optionally :precision)")
    precision = precision or DEFAULT_PRECISION[target]
    if precision not in PRECISIONS[target]:
        raise ConvertError(f"precision {precision!r} is not available for {target}: choose one of {', '.join(PRECISIONS[target])}")
    return TargetSpec(target, precision)


@dataclass
class BenchSettings:
    out_dir: Path
    weights: str | None
    runs: int = 50
    warmup: int = 10
    threads: int = 1
    input_size: int | None = None
    labels: Path | None = None
    calib_dir: Path | None = None
    calib_count: int = 32
    reexport: bool = False
    baselines: bool = True
    progress: bool = True


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


def export_config(variant: str, spec: TargetSpec, settings: BenchSettings, *, input_size: int) -> ExportConfig:
    """Validated up front for every variant × target, so a bad combination fails before any slow work."""
    return ExportConfig(
        variant=variant, target=spec.target, out_dir=settings.out_dir / "exports" / variant, precision=spec.precision,
        weights=settings.weights, input_size=input_size, labels=settings.labels, calib_dir=settings.calib_dir,
        calib_count=settings.calib_count, force=True, progress=settings.progress,
    )


def reusable(config: ExportConfig, source: ModelSource) -> bool:
    """An earlier export of the same weights and settings, untouched since (its sidecar's hash matches)."""
    path = config.artifact_path
    if not path.exists():
        return False
    sidecar, _ = read_sidecar(path)
    if sidecar is None or not source.weights_info.get("sha256"):
        return False
    recorded = sidecar.get("config", {})
    wanted = {"variant": config.variant, "target": config.target, "precision": config.precision, "input_size": config.input_size,
              "labels": str(config.labels) if config.labels else None}
    if config.precision == "int8":
        wanted |= {"calib_dir": str(config.calib_dir), "calib_count": config.calib_count}
    return all(recorded.get(k) == v for k, v in wanted.items()) and sidecar.get("weights", {}).get("sha256") == source.weights_info["sha256"]


def export_ours(config: ExportConfig, source: ModelSource, *, images_dir: Path | None, settings: BenchSettings, log: Log) -> tuple[str, str]:
    """(status, detail) of one export through the pipeline; a failed parity keeps the artifact (the check reports it)."""
    from convert.pipeline import run_export

    if not settings.reexport and reusable(config, source):
        log(f"→ reusing {config.artifact_path} (same weights and settings; --reexport to redo)")
        return REUSED, ""
    log(f"→ exporting {config.target} {config.precision}")
    try:
        run_export(config, images_dir=images_dir, source=source, log=log)
    except ToleranceError as exc:
        return EXPORTED, f"parity failed at export: {'; '.join(exc.failures)}"
    except NotBuiltYet as exc:
        return NOT_BUILT, str(exc)
    except ConvertError as exc:
        return EXPORT_FAILED, str(exc)
    return EXPORTED, ""


def export_plain(baseline: Baseline, source: ModelSource, folder: Path, *, input_size: int, variant: str, log: Log) -> tuple[str, str, Path | None]:
    """(status, detail, path) of one plain baseline conversion, written next to our exports."""
    path = folder / baseline.filename(variant)
    try:
        export_baseline(baseline, source, path, input_size=input_size, log=log)
    except NotBuiltYet as exc:
        return NOT_BUILT, str(exc), None
    except ConvertError as exc:
        return EXPORT_FAILED, str(exc), None
    return EXPORTED, baseline.description, path


def _latency(row: BenchRow, *, settings: BenchSettings, input_size: int, log: Log, **model: Any) -> None:
    if row.check is not None and row.check.status in (CRASH, MISMATCH, ERROR):
        row.latency_note = f"not measured: {row.check.status} in the parity check"
        return
    if row.target == "coreml" and sys.platform != "darwin":
        row.latency_note = OFF_MACOS
        return
    log(f"→ timing {row.name} ({settings.warmup} warm-up + {settings.runs} runs, {settings.threads} thread(s))")
    try:
        row.latency = measure(row.target, input_size=input_size, runs=settings.runs, warmup=settings.warmup,
                              threads=settings.threads, **model)
    except LatencyUnavailable as exc:
        row.latency_note = str(exc)


def bench_variant(
    variant: str, specs: list[TargetSpec], *, source: ModelSource, images: EvalImages, images_dir: Path | None,
    settings: BenchSettings, log: Log,
) -> list[BenchRow]:
    """Every row for one variant: the PyTorch reference, our exports, then the plain baselines."""
    import shvit

    size = source.input_size
    macs = shvit.count_macs(source.reference, size)
    rows = [BenchRow(variant, "pytorch (reference)", "pytorch", "fp32", REFERENCE, "reference", reference_runtime(), macs=macs)]
    planned: list[tuple[BenchRow, Path | None]] = []
    for spec in specs:
        config = export_config(variant, spec, settings, input_size=size)
        status, detail = export_ours(config, source, images_dir=images_dir, settings=settings, log=log)
        path = config.artifact_path if status in (EXPORTED, REUSED) else None
        planned.append((BenchRow(variant, spec.label, spec.target, spec.precision, OURS, status, detail, path, macs=macs), path))
    if settings.baselines:
        folder = settings.out_dir / "exports" / variant
        for baseline in baselines_for({s.target for s in specs}):
            status, detail, path = export_plain(baseline, source, folder, input_size=size, variant=variant, log=log)
            row = BenchRow(variant, baseline.label, baseline.target, baseline.precision, BASELINE, status, detail, path, macs=macs,
                           not_comparable=baseline.not_comparable if path else "")
            planned.append((row, path))
    reference = reference_logits(source, images.pixels, progress=settings.progress)
    infos: dict[Path, ArtifactInfo] = {}
    for row, path in planned:
        if path is not None:
            info = infos[path] = inspect(path, read_graph=True)
            row.size_bytes, row.ops = info.size_bytes, info.ops
    comparable = [infos[path] for row, path in planned if path is not None and not row.not_comparable]
    report = check_artifacts(comparable, source=source, images=images, threads=settings.threads,
                             log=log, progress=settings.progress, reference=reference)
    results = {r.path: r for r in report.artifacts}
    weights = source.weights_info.get("path")
    _latency(rows[0], settings=settings, input_size=size, log=log, variant=variant, weights=weights)
    rows[0].accuracy = rows[0].reference_accuracy = report.reference_accuracy
    for row, path in planned:
        if path is not None:
            row.check = results.get(path)
            if row.check is not None:
                row.accuracy, row.reference_accuracy = row.check.accuracy, report.reference_accuracy
            _latency(row, settings=settings, input_size=size, log=log, artifact=path)
        rows.append(row)
    if rows[0].latency is not None:
        for row in rows:
            if row.latency is not None:
                row.speedup = rows[0].latency.median_ms / row.latency.median_ms
    return rows
