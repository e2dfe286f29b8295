"""The benchmark: export (or reuse) every target, or take the user's artifacts; check all against
PyTorch at once; time all of one reference together in interleaved rounds.

Exports go through :func:`convert.api.pipeline.run_export` (the same path as ``shvit-convert``);
parity and accuracy through :func:`convert.validate.checker.check_artifacts` (the same as
``shvit-check``), so a benchmark row and a user's own check can never disagree. Given artifacts
find their reference as ``shvit-check`` does (sidecar, or ``--variant``/``--weights``), grouped by
it: one reference per group, each group timed on its own. Which targets, precisions and baselines
exist comes from the target registry.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shvit
from convert import targets
from convert.bench.baselines import Baseline, baselines_for, export_baseline
from convert.bench.latency import DEFAULT_ROUNDS, PYTORCH, Latency, Model, effective_rounds, host_description, measure_all, speedup
from convert.config import (
    DEFAULT_CALIB_COUNT,
    ExportOptions,
    ExportPlan,
    ModelSpec,
    OutputSpec,
    check_input_size,
    default_input_size,
    plan,
)
from convert.errors import ArgumentError, ConvertError, UsageError
from convert.io.scratch import Scratch
from convert.io.sidecar import read_sidecar
from convert.io.staging import check_output_dir
from convert.validate.accuracy import Accuracy
from convert.validate.artifact_info import ArtifactInfo, inspect
from convert.validate.checker import artifact_paths, check_artifacts, display_names, reference_runtime, sidecar_labels
from convert.validate.images import EvalImages, check_image_folders, check_image_options, load_images
from convert.validate.report import CRASH, ERROR, MISMATCH, ArtifactResult
from shvit.provenance import is_random

if TYPE_CHECKING:
    from convert.source import ModelSource

Log = Callable[[str], None]
OURS, BASELINE, REFERENCE = "ours", "baseline", "reference"
EXPORTED, REUSED, GIVEN, EXPORT_FAILED = "exported", "reused", "given", "export failed"
BUILT = (EXPORTED, REUSED, GIVEN)
"""Export statuses of a row that has an artifact to check and time."""
VARIANT_NAMES = ("s1", "s2", "s3", "s4", "auto")
AUTO_WITH_RANDOM_WEIGHTS = "auto infers the architecture from a checkpoint, so it cannot go with random initialisation"
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
        raise ArgumentError(
            f"unknown target {name!r} in {text!r}: choose one of {', '.join(targets.names())} (optionally :precision)",
            argument="target",
        )
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
    """The checkpoint, ``imagenet``, or None: random weights (exports); for given artifacts, None leaves it to their sidecars."""
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    rounds: int = DEFAULT_ROUNDS
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
    """Median over the rounds of the reference's median / this row's median in the same round."""
    speedup_rounds: tuple[float, ...] = ()
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
        return self.kind != OURS or (self.export in BUILT and self.check is not None and self.check.passed)

    @property
    def speedup_range(self) -> tuple[float, float] | None:
        """Lowest and highest per-round speed-up."""
        return (min(self.speedup_rounds), max(self.speedup_rounds)) if self.speedup_rounds else None


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
    path = export.output.out_dir / export.artifact_name(source.naming)
    if not path.exists():
        return False
    sidecar, _ = read_sidecar(path)
    if sidecar is None or not source.weights_info.get("sha256"):
        return False
    recorded = sidecar.get("config", {})
    wanted = json.loads(json.dumps({**source.record(), **export.record()}, default=str))  # as the sidecar holds it (tuples as lists)
    if not export.calibrated:
        wanted = {k: v for k, v in wanted.items() if k not in ("calib_dir", "calib_count")}
    return (
        all(recorded.get(k) == v for k, v in wanted.items()) and sidecar.get("weights", {}).get("sha256") == source.weights_info["sha256"]
    )


def export_ours(
    export: ExportPlan, source: ModelSource, *, images_dir: Path | None, settings: BenchSettings, scratch: Scratch, log: Log
) -> tuple[str, str]:
    """(status, detail) of one export through the pipeline; a failed parity keeps the artifact (the check reports it)."""
    path = export.output.out_dir / export.artifact_name(source.naming)
    if not settings.reexport and reusable(export, source):
        log(f"→ reusing {path} (same weights and settings; reexport redoes it)")
        return REUSED, ""
    log(f"→ exporting {export.target.name} {export.precision}")
    try:
        from convert.api.pipeline import run_export  # PyTorch loads here, not when the command parses its arguments

        result = run_export(export, source, images=images_dir, scratch=scratch)
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
    except ConvertError as exc:
        return EXPORT_FAILED, str(exc), None
    return EXPORTED, baseline.description, path


def reference_row(variant: str, source: ModelSource) -> BenchRow:
    """The PyTorch row every other row of its group is checked and timed against."""
    macs = shvit.count_macs(source.reference, source.input_size)
    return BenchRow(variant, "pytorch (reference)", PYTORCH, "fp32", REFERENCE, "reference", reference_runtime(), macs=macs)


def bench_variant(
    variant: str,
    specs: list[TargetSpec],
    *,
    source: ModelSource,
    images: EvalImages,
    images_dir: Path | None,
    settings: BenchSettings,
    scratch: Scratch,
    log: Log,
) -> list[BenchRow]:
    """Every row for one variant: the PyTorch reference, our exports, then the plain baselines."""
    reference = reference_row(variant, source)
    planned: list[tuple[BenchRow, Path | None]] = []
    for spec in specs:
        export = export_plan(spec, settings, variant)
        status, detail = export_ours(export, source, images_dir=images_dir, settings=settings, scratch=scratch, log=log)
        path = export.output.out_dir / export.artifact_name(source.naming) if status in (EXPORTED, REUSED) else None
        planned.append((BenchRow(variant, spec.label, spec.target, spec.precision, OURS, status, detail, path, macs=reference.macs), path))
    if settings.baselines:
        folder = settings.out_dir / "exports" / variant
        for baseline in baselines_for(s.target for s in specs):
            status, detail, path = export_plain(baseline, source, folder, scratch=scratch, log=log)
            row = BenchRow(
                variant,
                baseline.label,
                baseline.target.name,
                baseline.precision,
                BASELINE,
                status,
                detail,
                path,
                macs=reference.macs,
                not_comparable=baseline.not_comparable if path else "",
            )
            planned.append((row, path))
    inspected = [(row, inspect(path, scratch=scratch, read_graph=True) if path is not None else None) for row, path in planned]
    return check_and_time(reference, inspected, source=source, images=images, settings=settings, scratch=scratch, log=log)


def check_and_time(
    reference: BenchRow,
    planned: Sequence[tuple[BenchRow, ArtifactInfo | None]],
    *,
    source: ModelSource,
    images: EvalImages,
    settings: BenchSettings,
    scratch: Scratch,
    log: Log,
) -> list[BenchRow]:
    """The reference row and ``planned`` (a row and its artifact, None where there is none), checked and timed together."""
    for row, info in planned:
        if info is not None:
            row.size_bytes, row.ops = info.size_bytes, info.ops
    comparable = [info for row, info in planned if info is not None and not row.not_comparable]
    report = check_artifacts(
        comparable, source=source, images=images, scratch=scratch, threads=settings.threads, progress=settings.progress
    )
    results = {r.path: r for r in report.artifacts}
    reference.accuracy = reference.reference_accuracy = report.reference_accuracy
    rows = [reference]
    for row, info in planned:
        if info is not None:
            row.check = results.get(info.path)
            if row.check is not None:
                row.accuracy, row.reference_accuracy = row.check.accuracy, report.reference_accuracy
        rows.append(row)
    time_rows(rows, source=source, settings=settings, scratch=scratch, log=log)
    return rows


def time_rows(rows: Sequence[BenchRow], *, source: ModelSource, settings: BenchSettings, scratch: Scratch, log: Log) -> None:
    """Latency of every row that has a working model, all timed together in interleaved rounds, and each
    row's speed-up over the reference (``rows[0]``) round by round."""
    timed: list[tuple[BenchRow, Model]] = []
    for row in rows:
        if row.kind == REFERENCE:
            timed.append(
                (
                    row,
                    Model(
                        PYTORCH,
                        variant=source.variant,
                        weights=_text(source.weights_info.get("path")),
                        seed=_seed(source.weights_info.get("seed")),
                        num_classes=source.num_classes,
                    ),
                )
            )
        elif row.artifact is None:
            continue
        elif row.check is not None and row.check.status in (CRASH, MISMATCH, ERROR):
            row.latency_note = f"not measured: {row.check.status} in the parity check"
        elif targets.get(row.target).runtime.latency_unavailable():
            row.latency_note = str(targets.get(row.target).runtime.latency_unavailable())  # said once, in its row: not timed at all
        else:
            timed.append((row, Model(row.target, artifact=row.artifact)))
    rounds = effective_rounds(settings.rounds, settings.runs)
    log(
        f"→ timing {len(timed)} models in {rounds} interleaved round{'s' if rounds != 1 else ''} "
        f"({settings.warmup} warm-up + {settings.runs} runs each, {settings.threads} thread(s))"
    )
    measured = measure_all(
        [model for _, model in timed],
        input_size=source.input_size,
        runs=settings.runs,
        warmup=settings.warmup,
        rounds=rounds,
        threads=settings.threads,
        scratch=scratch,
    )
    for (row, _), result in zip(timed, measured):
        row.latency, row.latency_note = result.latency, result.note
    base = rows[0].latency
    for row in rows:
        ratio = speedup(base, row.latency) if base is not None and row.latency is not None else None
        if ratio is not None:
            row.speedup, row.speedup_rounds = ratio.median, ratio.per_round


def _log_images(images: EvalImages) -> None:
    _logger.info(f"→ images: {images.description}")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _seed(value: object) -> int | None:
    return value if isinstance(value, int) else None


def check_settings(
    settings: BenchSettings, *, count: int, images_dir: Path | None, labels_from_folders: bool, labels_file: Path | None
) -> None:
    """What both kinds of bench validate before any slow work."""
    check_image_options(images=images_dir, labels_from_folders=labels_from_folders, labels_file=labels_file)
    for argument, value, low in (
        ("runs", settings.runs, 1),
        ("warmup", settings.warmup, 0),
        ("rounds", settings.rounds, 1),
        ("threads", settings.threads, 1),
        ("count", count, 0),
    ):
        if value < low:
            raise UsageError(f"must be at least {low}, not {value}", argument=argument)


def _record(settings: BenchSettings, *, count: int, images_dir: Path | None, labelled: bool) -> dict[str, Any]:
    return {
        "images": str(images_dir) if images_dir else "generated",
        "count": count,
        "runs": settings.runs,
        "warmup": settings.warmup,
        "rounds": effective_rounds(settings.rounds, settings.runs),
        "threads": settings.threads,
        "labelled": labelled,
    }


def run_bench(
    variants: Sequence[str],
    target_specs: Sequence[str],
    *,
    settings: BenchSettings,
    random_init: bool = False,
    images_dir: Path | None = None,
    labels_from_folders: bool = False,
    labels_file: Path | None = None,
    count: int = DEFAULT_COUNT,
) -> BenchResult:
    """Every variant × ``TARGET[:PRECISION]``, checked and timed; every argument is validated before any slow work."""
    log = _logger.info
    for name in variants:
        if name not in VARIANT_NAMES:
            raise UsageError(f"unknown variant {name!r}: choose from {', '.join(VARIANT_NAMES)}", argument="variant")
    if not variants:
        raise UsageError(
            "nothing to benchmark: name the variants to export and time, or give the paths of exported artifacts", argument="variant"
        )
    specs = list(dict.fromkeys(parse_target(t) for t in target_specs))
    check_settings(settings, count=count, images_dir=images_dir, labels_from_folders=labels_from_folders, labels_file=labels_file)
    if random_init and "auto" in variants:
        raise UsageError(AUTO_WITH_RANDOM_WEIGHTS, argument="variant")
    if not random_init and settings.weights != "imagenet" and len(variants) > 1:
        raise UsageError(
            f"{settings.weights} is one checkpoint: benchmark one variant with it, or several with the released (imagenet) weights",
            argument="weights",
        )
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
    from convert.source import load_source  # PyTorch loads here, after every argument is checked

    rows: list[BenchRow] = []
    labelled = False
    with Scratch.open() as scratch:
        for name in variants:
            log(f"━━ SHViT-{name.upper()} ━━")
            model_spec = ModelSpec(
                variant=name, weights=None if random_init else settings.weights, labels=settings.labels, input_size=sizes[name]
            )
            source = load_source(model_spec)
            images = load_images(
                images_dir,
                size=sizes[name],
                count=count,
                class_names=source.labels,
                labels_from_folders=labels_from_folders,
                labels_file=labels_file,
                sorted_order=settings.labels is None and source.num_classes == 1000,
                progress=settings.progress,
            )
            labelled = images.truth is not None
            _log_images(images)
            rows += bench_variant(
                name, specs, source=source, images=images, images_dir=images_dir, settings=settings, scratch=scratch, log=log
            )
    record = {
        "variants": list(variants),
        "targets": [s.label for s in specs],
        "weights": settings.weights if not random_init else "random init",
        "baselines": settings.baselines,
        **_record(settings, count=count, images_dir=images_dir, labelled=labelled),
    }
    return BenchResult(rows, labelled, host_description(), record)


# ---- given artifacts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """What given artifacts were exported from, as shvit-check loads it; artifacts with equal references share one group."""

    variant: str
    weights: str | None
    seed: int | None = None
    input_size: int | None = None

    @property
    def description(self) -> str:
        weights = self.weights if self.weights is not None else f"random weights{f', seed {self.seed}' if self.seed is not None else ''}"
        size = f" at {self.input_size}×{self.input_size}" if self.input_size else ""
        return f"SHViT-{self.variant.upper()} ({weights}){size}"


def artifact_reference(path: Path, *, variant: str | None, weights: str | None, random_init: bool) -> Reference:
    """The reference of one given artifact: ``variant``/``weights``/``random_init`` where given, else its sidecar's record.

    A random-weights export is redrawn from the seed its sidecar records (the one :func:`convert.check` uses).
    """
    sidecar, note = read_sidecar(path)
    if sidecar is None and variant is None:
        why = note or f"it has no sidecar ({path.name}.json)"
        raise UsageError(
            f"cannot tell what {path} was exported from: {why}; name its variant, and its weights or random initialisation",
            argument="variant",
        )
    recorded = sidecar.get("weights", {}) if sidecar is not None else {}
    recorded = recorded if isinstance(recorded, dict) else {}
    seed = _seed(recorded.get("seed"))
    name = str(variant or (sidecar or {}).get("config", {}).get("variant") or "")
    if name not in VARIANT_NAMES:
        raise UsageError(f"{path.name}'s sidecar names no SHViT variant ({name!r}): name it", argument="variant")
    if random_init or (weights is None and sidecar is not None and is_random(recorded)):
        if name == "auto":
            raise UsageError(f"{path.name}: random weights need a named variant (s1…s4), not auto", argument="variant")
        return Reference(name, None, seed)
    if weights is not None or sidecar is None:
        if name == "auto" and (weights or "imagenet") == "imagenet":
            raise UsageError("variant auto infers the architecture from a checkpoint: give the checkpoint's path", argument="weights")
        return Reference(name, weights or "imagenet")
    if recorded.get("source") == "imagenet":
        return Reference(name, "imagenet")
    checkpoint = recorded.get("path")
    if not checkpoint:
        raise ArgumentError(
            f"{path.name} was exported from {recorded.get('source', 'unrecorded weights')}, which its sidecar cannot "
            "point back to: give the path of the checkpoint it was exported from",
            argument="weights",
        )
    if not Path(checkpoint).is_file():
        raise ArgumentError(
            f"{path.name} was exported from {checkpoint}, which is not there any more: give the path of the same checkpoint",
            argument="weights",
        )
    return Reference(name, str(checkpoint))


def bench_artifacts(
    paths: Sequence[Path],
    *,
    settings: BenchSettings,
    variant: str | None = None,
    random_init: bool = False,
    images_dir: Path | None = None,
    labels_from_folders: bool = False,
    labels_file: Path | None = None,
    count: int = DEFAULT_COUNT,
) -> BenchResult:
    """Given artifacts, checked and timed as they are (nothing exported): grouped by the reference each was
    exported from (variant, weights, input size), one PyTorch reference row per group; every argument and
    every sidecar is validated before any slow work."""
    log = _logger.info
    if variant is not None and variant not in VARIANT_NAMES:
        raise UsageError(f"unknown variant {variant!r}: choose from {', '.join(VARIANT_NAMES)}", argument="variant")
    if random_init and variant == "auto":
        raise UsageError(AUTO_WITH_RANDOM_WEIGHTS, argument="variant")
    check_settings(settings, count=count, images_dir=images_dir, labels_from_folders=labels_from_folders, labels_file=labels_file)
    if not paths:
        raise UsageError("no artifacts to benchmark: pass exported model files", argument="artifacts")
    paths = artifact_paths(paths)
    check_image_folders({"images": images_dir})
    check_output_dir(settings.out_dir)
    if settings.input_size is not None:
        check_input_size(settings.input_size)
    references = [artifact_reference(p, variant=variant, weights=settings.weights, random_init=random_init) for p in paths]
    many = len(paths) != 1
    log(f"→ timing the {len(paths)} given artifact{'s as they are' if many else ' as it is'} (nothing is exported)")
    rows: list[BenchRow] = []
    labelled = False
    with Scratch.open() as scratch:
        groups: dict[Reference, list[ArtifactInfo]] = {}
        for path, reference in zip(paths, references):
            info = inspect(path, scratch=scratch, read_graph=True)
            recorded = info.sidecar_config("input_size")
            size = settings.input_size or (recorded if isinstance(recorded, int) else None) or info.input_size
            groups.setdefault(dataclasses.replace(reference, input_size=size), []).append(info)
        names = _group_names(list(groups))
        for (reference, members), name in zip(groups.items(), names):
            log(f"━━ {name}: {reference.description}, {len(members)} artifact{'s' if len(members) != 1 else ''} ━━")
            group = _bench_group(
                reference,
                members,
                name=name,
                settings=settings,
                images_dir=images_dir,
                labels_from_folders=labels_from_folders,
                labels_file=labels_file,
                count=count,
                scratch=scratch,
                log=log,
            )
            labelled = labelled or group[0].reference_accuracy is not None
            rows += group
    record = {
        "variants": names,
        "targets": sorted({f"{r.target} {r.precision}" for r in rows if r.kind == OURS}),
        "artifacts": [str(p) for p in paths],
        "references": [
            {
                "variant": r.variant,
                "weights": r.weights if r.weights is not None else "random init",
                "seed": r.seed,
                "input_size": r.input_size,
                "artifacts": [str(i.path) for i in m],
            }
            for r, m in groups.items()
        ],
        "weights": settings.weights if settings.weights and not random_init else ("random init" if random_init else "from sidecars"),
        **_record(settings, count=count, images_dir=images_dir, labelled=labelled),
    }
    return BenchResult(rows, labelled, host_description(), record)


def _group_names(references: Sequence[Reference]) -> list[str]:
    """The variant column of each group: the variant, with its input size or number where two groups share it."""
    names = [r.variant for r in references]
    if len(set(names)) == len(names):
        return names
    sized = [f"{r.variant}@{r.input_size}" if r.input_size else r.variant for r in references]
    return sized if len(set(sized)) == len(sized) else [f"{n}#{i}" for i, n in enumerate(sized, 1)]


def _bench_group(
    reference: Reference,
    members: list[ArtifactInfo],
    *,
    name: str,
    settings: BenchSettings,
    images_dir: Path | None,
    labels_from_folders: bool,
    labels_file: Path | None,
    count: int,
    scratch: Scratch,
    log: Log,
) -> list[BenchRow]:
    """One group's reference loaded as shvit-check loads it (labels from the sidecars), its artifacts checked and timed."""
    from convert.api.model import load_model, model_spec

    spec = model_spec(
        reference.variant,
        weights=reference.weights,
        num_classes=1000,
        labels=settings.labels,
        input_size=reference.input_size,
        seed=reference.seed,
    )
    source = load_model(reference.variant, spec, labels=settings.labels, input_size=reference.input_size)
    named = sidecar_labels(members, num_classes=source.num_classes) if settings.labels is None else None
    if named is not None:
        source.labels_file, source.labels = named
        log(f"→ class names from {named[0]} (named in the artifacts' sidecars)")
    images = load_images(
        images_dir,
        size=source.input_size,
        count=count,
        class_names=source.labels,
        labels_from_folders=labels_from_folders,
        labels_file=labels_file,
        sorted_order=settings.labels is None and named is None and source.num_classes == 1000,
        progress=settings.progress,
    )
    _log_images(images)
    head = reference_row(name, source)
    precisions = [info.precision[0] or targets.get(info.target).default_precision for info in members]  # as check_artifact assumes
    labels = [f"{info.target} {precision}" for info, precision in zip(members, precisions)]
    planned = []
    for info, precision, label, file in zip(members, precisions, labels, display_names([info.path for info in members])):
        title = label if labels.count(label) == 1 else f"{label} ({file})"  # two exports of one kind: tell them apart
        planned.append((BenchRow(name, title, info.target, precision, OURS, GIVEN, artifact=info.path, macs=head.macs), info))
    return check_and_time(head, planned, source=source, images=images, settings=settings, scratch=scratch, log=log)
