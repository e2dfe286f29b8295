"""The checker: are these exported models still SHViT? Numbers on the user's own images.

Every artifact runs in its own runtime in a subprocess (a native abort is one failed row, not a
dead command) on the same pixels as the PyTorch reference; each gets figures, a verdict against
its target/precision tolerance and, with labelled images, its accuracy beside PyTorch's.
``shvit-check``, ``shvit-bench`` and :func:`convert.check` all come through here.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from convert import targets
from convert.config import default_input_size
from convert.errors import ArgumentError, ConvertError, RuntimeCrash
from convert.io.scratch import Scratch
from convert.io.sidecar import toolkit_versions
from convert.parity import compare
from convert.validate.accuracy import accuracy
from convert.validate.artifact_info import ArtifactInfo
from convert.validate.images import EvalImages
from convert.validate.report import CRASH, ERROR, FAIL, MISMATCH, PASS, ArtifactResult, CheckReport
from convert.validate.runner import run_artifact
from shvit.provenance import is_random

if TYPE_CHECKING:
    from convert.source import ModelSource

DEFAULT_COUNT = 128
UNRELATED_COSINE = 0.5

Log = Callable[[str], None]
_logger = logging.getLogger(__name__)


def _mismatch(info: ArtifactInfo, *, variant: str, input_size: int, num_classes: int) -> str | None:
    """One line naming why ``info`` cannot be this reference's export, or None."""
    exported = str(info.sidecar_config("variant") or "")
    if exported and "auto" not in (exported, variant) and exported != variant:
        return f"exported from SHViT-{exported.upper()} (sidecar), checked against SHViT-{variant.upper()}: check it against variant {exported}"
    if info.input_size and info.input_size != input_size:
        return (
            f"model input is {info.input_size}×{info.input_size} but the check runs at {input_size}×{input_size}: "
            f"check it separately at input size {info.input_size}, or re-export it at {input_size}"
        )
    classes = info.num_classes or (info.sidecar or {}).get("export", {}).get("output", {}).get("classes")
    if isinstance(classes, int) and classes != num_classes:
        return _classes_mismatch(classes, num_classes)
    return None


def _classes_mismatch(classes: int, expected: int) -> str:
    return (
        f"model outputs {classes} classes, the reference {expected}: exported from another variant or head (check the variant and weights)"
    )


def check_artifact(
    info: ArtifactInfo,
    *,
    source: ModelSource,
    images: EvalImages,
    reference: np.ndarray,
    scratch: Scratch,
    threads: int | None = None,
) -> ArtifactResult:
    """Run one artifact and judge it; every failure becomes a row with a reason, never an exception."""
    started = time.perf_counter()
    precision, origin = info.precision
    notes = list(info.notes)
    target = targets.get(info.target)
    if precision is None:
        precision, origin = target.default_precision, "assumed (no sidecar, graph unreadable)"
    if origin != "sidecar":
        notes.append(f"precision {precision} {origin}")
    result = ArtifactResult(info.path, info.target, precision, origin, ERROR, size_bytes=info.size_bytes, notes=notes)
    result.gpu_delegate = _gpu_delegate(target, info.path, notes)
    expected_sha = (info.sidecar or {}).get("weights", {}).get("sha256")
    given_sha = cast("str | None", source.weights_info.get("sha256"))  # the weights record holds it as hex text
    if expected_sha and given_sha and expected_sha != given_sha:
        notes.append(f"its sidecar names other weights (sha256 {expected_sha[:12]}…) than the weights given (sha256 {given_sha[:12]}…)")
    if info.unreadable:
        notes.append(f"could not read its graph: {info.unreadable}")
    result.tolerance = target.tolerances.get(precision)
    if result.tolerance is None:
        result.reason = f"no tolerance defined for {info.target} {precision}; known: {', '.join(target.tolerances)}"
        return result
    mismatch = _mismatch(info, variant=source.variant, input_size=source.input_size, num_classes=source.num_classes)
    if mismatch:
        result.status, result.reason = MISMATCH, mismatch
        return result
    try:
        logits, result.runtime = run_artifact(info.path, images.pixels, scratch=scratch, threads=threads)
    except RuntimeCrash as exc:
        result.status, result.reason = CRASH, str(exc).removeprefix(f"{info.path.name}: ")
        return result
    except ConvertError as exc:
        result.reason = str(exc)
        return result
    finally:
        result.seconds = time.perf_counter() - started
    if logits.shape != reference.shape:
        result.status = MISMATCH
        result.reason = (
            _classes_mismatch(logits.shape[-1], reference.shape[-1])
            if logits.ndim == 2 and len(logits) == len(reference)
            else f"outputs shape {tuple(logits.shape)}, the reference {tuple(reference.shape)}: not an SHViT classifier export?"
        )
        return result
    result.parity = compare(reference, logits)
    result.checks = result.tolerance.checklist(result.parity)
    result.status = PASS if all(ok for _, ok, _ in result.checks) else FAIL
    recorded = (info.sidecar or {}).get("weights", {})
    if result.status == FAIL and is_random(recorded) and not source.random_weights:
        seed = f", seed {recorded['seed']}" if "seed" in recorded else ""
        result.reason = f"exported from random weights (a try-out{seed}, says its sidecar): check it against random initialisation"
    elif result.status == FAIL and result.parity.cosine < UNRELATED_COSINE:
        result.reason = (
            f"outputs unrelated to the reference (cosine {result.parity.cosine:.2f}): exported from other weights or "
            "another variant? (check the variant and weights)"
        )
    if images.truth is not None:
        result.accuracy = accuracy(logits, images.truth)
    return result


def _gpu_delegate(target: targets.Target, path: Path, notes: list[str]) -> object | None:
    """A target's GPU delegate coverage of ``path`` (TFLite: ``gpu_delegate(path)``), or None; a failed check is a note."""
    check = getattr(target, "gpu_delegate", None)
    if check is None:
        return None
    try:
        return check(path)
    except ConvertError as exc:
        notes.append(f"GPU delegate: not checked: {exc}")
        return None


def reference_runtime() -> str:
    import torch

    return f"PyTorch {torch.__version__.split('+')[0]} eager (unfused reference)"


def check_artifacts(
    infos: Sequence[ArtifactInfo],
    *,
    source: ModelSource,
    images: EvalImages,
    scratch: Scratch,
    threads: int | None = None,
    progress: bool = False,
    reference: np.ndarray | None = None,
) -> CheckReport:
    """Check every artifact against one reference on one image set."""
    log = _logger.info
    if reference is None:
        reference = source.reference_logits(images.pixels, progress=progress)
    results = []
    names = display_names([info.path for info in infos])
    for number, (info, name) in enumerate(zip(infos, names), 1):
        log(f"→ [{number}/{len(infos)}] {name}: running in its runtime")
        result = check_artifact(info, source=source, images=images, reference=reference, scratch=scratch, threads=threads)
        result.name = name
        log(f"  {result.status.upper()}{': ' + result.detail if result.detail else ''}")
        results.append(result)
    truth = images.truth
    sha = cast("str | None", source.weights_info.get("sha256"))  # the weights record holds it as hex text
    seed = source.weights_info.get("seed")
    weights = (
        str(source.weights_info.get("source", "?"))
        + (f" (sha256 {sha[:12]}…)" if sha else "")
        + (f", seed {seed}" if seed is not None else "")
    )
    return CheckReport(
        reference={
            "variant": source.variant,
            "input_size": source.input_size,
            "num_classes": source.num_classes,
            "weights": weights,
            "weights_sha256": sha,
            "runtime": reference_runtime(),
        },
        images={
            "description": images.description,
            "source": images.source,
            "folder": str(images.folder) if images.folder else None,
            "count": len(images.pixels),
            "labels": truth.source if truth else None,
            "mapping": truth.mapping if truth else None,
            "labelled": truth.known if truth else 0,
        },
        reference_accuracy=accuracy(reference, truth) if truth is not None else None,
        artifacts=results,
        versions=toolkit_versions(),
    )


def display_names(paths: Sequence[Path]) -> list[str]:
    """File names, with as many parent folders as it takes to tell same-named artifacts apart."""
    depth = 1
    while depth < 8:
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
        depth += 1
    return [str(p) for p in paths]


def artifact_paths(paths: Sequence[Path]) -> list[Path]:
    """Fail fast, before any slow work, on a path that does not exist or is not an artifact."""
    kinds = targets.suffix_list()
    for path in paths:
        if not path.exists():
            raise ArgumentError(f"{path} does not exist: pass exported {kinds} files", argument="artifacts")
        target = targets.for_path(path)
        if not target.bundle and not path.is_file():
            raise ArgumentError(f"{path} is a folder, not a {path.suffix} file", argument="artifacts")
        targets.require_toolchain(target)
    if len({p.resolve() for p in paths}) != len(paths):
        raise ArgumentError("the same artifact is listed twice: pass each once", argument="artifacts")
    return list(paths)


def resolve_input_size(requested: int | None, infos: Sequence[ArtifactInfo], variant: str) -> tuple[int, str]:
    """The requested size, else what the artifacts' sidecars agree on most, else the variant's."""
    if requested:
        return requested, "the requested input size"
    sizes = Counter(i.sidecar_config("input_size") for i in infos if isinstance(i.sidecar_config("input_size"), int))
    if sizes:
        return sizes.most_common(1)[0][0], "the artifacts' sidecars"
    return default_input_size(variant), f"the {variant.upper()} default"


def sidecar_labels(infos: Sequence[ArtifactInfo], *, num_classes: int) -> tuple[Path, list[str]] | None:
    """The class-names file the artifacts were exported with, when it is still there and fits this model."""
    from convert.labels import read_labels

    for info in infos:
        named = info.sidecar_config("labels")
        if named and Path(named).is_file():
            try:
                return Path(named), read_labels(Path(named), num_classes=num_classes)
            except ConvertError:
                continue
    return None
