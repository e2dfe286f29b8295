"""``shvit-check``: are these exported models still SHViT? Numbers on the user's own images.

Every artifact runs in its own runtime in a subprocess (a native abort is one failed row, not a
dead command) on the same pixels as the PyTorch reference; each gets figures, a verdict against
its target/precision tolerance and, with labelled images, its accuracy beside PyTorch's.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from convert.cliutil import EXIT_ERROR, run_command
from convert.config import DEFAULT_PRECISION, ExportConfig
from convert.errors import ConvertError, RuntimeCrash
from convert.pipeline import check_image_folders
from convert.source import ModelSource
from convert.validate.accuracy import GroundTruth, accuracy, from_folders, from_label_map
from convert.validate.artifact_info import TARGET_OF_SUFFIX, ArtifactInfo, inspect
from convert.validate.compare import TOLERANCES, check, compare
from convert.validate.report import (
    CRASH, ERROR, FAIL, MISMATCH, PASS, ArtifactResult, CheckReport, check_output_path, format_table, write_html, write_json,
)
from convert.validate.runner import BACKENDS, run_artifact

DEFAULT_COUNT = 128
UNRELATED_COSINE = 0.5

Log = Callable[[str], None]


def _log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


@dataclass
class EvalImages:
    """The pixels every runtime sees, where they came from, and their classes when known."""

    pixels: np.ndarray
    description: str
    source: str
    folder: Path | None = None
    truth: GroundTruth | None = None


def load_images(
    images_dir: Path | None, *, size: int, count: int, class_names: Sequence[str], labels_from_folders: bool = False,
    labels_file: Path | None = None, sorted_order: bool = False, progress: bool = True,
) -> EvalImages:
    """User photos (sampled with a fixed seed, ``count`` 0 = all) or, without a folder, generated ones."""
    import calib

    if images_dir is None:
        n = count or DEFAULT_COUNT
        return EvalImages(calib.synthetic_images(n, size, seed=0),
                          f"{n} generated natural-looking images (no --images given: pass --images DIR to check on your own photos)",
                          "synthetic")
    found = calib.load_folder(images_dir, size=size, count=count or None, seed=0, progress=progress)
    truth = None
    if labels_from_folders:
        truth = from_folders(found.labels, found.class_names, folder=images_dir, class_names=class_names, sorted_order=sorted_order)
    elif labels_file is not None:
        truth = from_label_map(labels_file, found.paths, root=images_dir, class_names=class_names, sorted_order=sorted_order)
    return EvalImages(found.pixels, f"{len(found.pixels)} images from {images_dir}", "folder", images_dir, truth)


def _mismatch(info: ArtifactInfo, *, variant: str, input_size: int, num_classes: int) -> str | None:
    """One line naming why ``info`` cannot be this reference's export, or None."""
    exported = str(info.sidecar_config("variant") or "")
    if exported and "auto" not in (exported, variant) and exported != variant:
        return f"exported from SHViT-{exported.upper()} (sidecar), checked against SHViT-{variant.upper()}: pass --variant {exported}"
    if info.input_size and info.input_size != input_size:
        return (f"model input is {info.input_size}×{info.input_size} but the check runs at {input_size}×{input_size}: "
                f"check it separately with --input-size {info.input_size}, or re-export it at {input_size}")
    classes = info.num_classes or (info.sidecar or {}).get("export", {}).get("output", {}).get("classes")
    if isinstance(classes, int) and classes != num_classes:
        return _classes_mismatch(classes, num_classes)
    return None


def _classes_mismatch(classes: int, expected: int) -> str:
    return f"model outputs {classes} classes, the reference {expected}: exported from another variant or head (check --variant/--weights)"


def _backend_missing(info: ArtifactInfo) -> str | None:
    module = BACKENDS[info.path.suffix.lower()]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"no {info.target} runtime in this version of the toolkit ({module} is not built yet)"


def check_artifact(
    info: ArtifactInfo, *, source: ModelSource, images: EvalImages, reference: np.ndarray, threads: int | None = None,
) -> ArtifactResult:
    """Run one artifact and judge it; every failure becomes a row with a reason, never an exception."""
    started = time.perf_counter()
    precision, origin = info.precision
    notes = list(info.notes)
    if precision is None:
        precision, origin = DEFAULT_PRECISION[info.target], "assumed (no sidecar, graph unreadable)"
    if origin != "sidecar":
        notes.append(f"precision {precision} {origin}")
    result = ArtifactResult(info.path, info.target, precision, origin, ERROR, size_bytes=info.size_bytes, notes=notes)
    expected_sha = (info.sidecar or {}).get("weights", {}).get("sha256")
    if expected_sha and source.weights_info.get("sha256") and expected_sha != source.weights_info["sha256"]:
        notes.append(f"its sidecar names other weights (sha256 {expected_sha[:12]}…) than --weights (sha256 {source.weights_info['sha256'][:12]}…)")
    if info.unreadable:
        notes.append(f"could not read its graph: {info.unreadable}")
    result.tolerance = TOLERANCES.get((info.target, precision))
    if result.tolerance is None:
        result.reason = f"no tolerance defined for {info.target} {precision}; known: {', '.join(p for t, p in TOLERANCES if t == info.target)}"
        return result
    mismatch = _mismatch(info, variant=source.variant, input_size=source.input_size, num_classes=source.num_classes)
    if mismatch:
        result.status, result.reason = MISMATCH, mismatch
        return result
    missing = _backend_missing(info)
    if missing:
        result.reason = missing
        return result
    try:
        logits, result.runtime = run_artifact(info.path, images.pixels, threads=threads)
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
        result.reason = (_classes_mismatch(logits.shape[-1], reference.shape[-1]) if logits.ndim == 2 and len(logits) == len(reference)
                         else f"outputs shape {tuple(logits.shape)}, the reference {tuple(reference.shape)}: not an SHViT classifier export?")
        return result
    result.parity = compare(reference, logits)
    result.checks = check(result.parity, result.tolerance)
    result.status = PASS if all(ok for _, ok, _ in result.checks) else FAIL
    if result.status == FAIL and result.parity.cosine < UNRELATED_COSINE:
        result.reason = (f"outputs unrelated to the reference (cosine {result.parity.cosine:.2f}): exported from other weights or "
                         "another variant? (check --variant/--weights)")
    if images.truth is not None:
        result.accuracy = accuracy(logits, images.truth)
    return result


def reference_logits(source: ModelSource, pixels: np.ndarray, *, batch: int = 16, progress: bool = True) -> np.ndarray:
    """PyTorch logits through the shared calib normalisation, with a progress bar for big sets."""
    import torch

    import calib
    from shvit.progress import progress_bar

    outs = []
    with torch.no_grad():
        for start in progress_bar(iterable=range(0, len(pixels), batch), desc="PyTorch reference", unit="batch",
                                  enabled=progress and len(pixels) > batch):
            outs.append(source.reference(torch.from_numpy(calib.normalize(pixels[start : start + batch]))).numpy())
    return np.concatenate(outs).astype(np.float32)


def reference_runtime() -> str:
    import torch

    return f"PyTorch {torch.__version__.split('+')[0]} eager (unfused reference)"


def check_artifacts(
    infos: Sequence[ArtifactInfo], *, source: ModelSource, images: EvalImages, threads: int | None = None,
    log: Log = _log, progress: bool = True, reference: np.ndarray | None = None,
) -> CheckReport:
    """Check every artifact against one reference on one image set."""
    from convert.artifacts import toolkit_versions

    if reference is None:
        reference = reference_logits(source, images.pixels, progress=progress)
    results = []
    names = display_names([info.path for info in infos])
    for number, (info, name) in enumerate(zip(infos, names), 1):
        log(f"→ [{number}/{len(infos)}] {name}: running in its runtime")
        result = check_artifact(info, source=source, images=images, reference=reference, threads=threads)
        result.name = name
        log(f"  {result.status.upper()}{': ' + result.detail if result.detail else ''}")
        results.append(result)
    truth = images.truth
    sha = source.weights_info.get("sha256")
    weights = source.weights_info.get("source", "?") + (f" (sha256 {sha[:12]}…)" if sha else "")
    return CheckReport(
        reference={"variant": source.variant, "input_size": source.input_size, "num_classes": source.num_classes,
                   "weights": weights, "weights_sha256": sha, "runtime": reference_runtime()},
        images={"description": images.description, "source": images.source, "folder": str(images.folder) if images.folder else None,
                "count": int(len(images.pixels)), "labels": truth.source if truth else None,
                "mapping": truth.mapping if truth else None, "labelled": truth.known if truth else 0},
        reference_accuracy=accuracy(reference, truth) if truth is not None else None,
        artifacts=results, versions=toolkit_versions(),
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
    for path in paths:
        if not path.exists():
            raise ConvertError(f"{path} does not exist: pass exported .onnx, .tflite or .mlpackage files")
        if path.suffix.lower() not in TARGET_OF_SUFFIX:
            raise ConvertError(f"{path}: unknown artifact type {path.suffix or '(no suffix)'}: pass .onnx, .tflite or .mlpackage files")
        if path.suffix.lower() != ".mlpackage" and not path.is_file():
            raise ConvertError(f"{path} is a folder, not a {path.suffix} file")
    if len({p.resolve() for p in paths}) != len(paths):
        raise ConvertError("the same artifact is listed twice: pass each once")
    return list(paths)


def resolve_input_size(requested: int | None, infos: Sequence[ArtifactInfo], variant: str) -> tuple[int, str]:
    """--input-size, else what the artifacts' sidecars agree on most, else the variant's."""
    if requested:
        return requested, "--input-size"
    sizes = Counter(i.sidecar_config("input_size") for i in infos if isinstance(i.sidecar_config("input_size"), int))
    if sizes:
        return sizes.most_common(1)[0][0], "the artifacts' sidecars"
    return ExportConfig(variant=variant, target="onnx", out_dir=Path(".")).input_size, f"the {variant.upper()} default"


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


@click.command(
    "shvit-check",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: shvit-check exports/shvit_s3_fp16.mlpackage exports/shvit_s3_int8.tflite --variant s3 "
           "--weights shvit_s3.pth --images val/ --labels-from-folders --html report.html",
)
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--variant", required=True, type=click.Choice(["s1", "s2", "s3", "s4", "auto"], case_sensitive=False),
              help="SHViT size the artifacts were exported from; 'auto' infers it from --weights.")
@click.option("--weights", default="imagenet", show_default=True,
              help="Checkpoint the artifacts were exported from, or 'imagenet' for the released weights (cached).")
@click.option("--images", "images_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of photos (flat or one sub-folder per class). Default: generated natural-looking images.")
@click.option("--labels-from-folders", is_flag=True, help="Take each image's class from its sub-folder and report accuracy.")
@click.option("--labels-file", type=click.Path(path_type=Path), default=None,
              help="File mapping images to classes ('file label' per line; label = class name or index) to report accuracy.")
@click.option("--labels", "labels_path", type=click.Path(path_type=Path), default=None,
              help="The model's class names, one per line (as given to shvit-convert --labels). "
                   "Default: from the artifacts' sidecars, else ImageNet-1k.")
@click.option("--count", type=int, default=DEFAULT_COUNT, show_default=True,
              help="Images to use (fixed seed, spread across classes); 0 = every image in --images.")
@click.option("--input-size", type=int, default=None,
              help="Input resolution. Default: the artifacts' sidecars, else the variant's (224; 256 for S4).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the JSON report here.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), default=None,
              help="Write a self-contained HTML report (table and chart) here.")
@click.option("--threads", type=int, default=None, help="CPU threads for each runtime. Default: the runtime's own choice.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def check_command(
    artifacts: tuple[Path, ...], variant: str, weights: str, images_dir: Path | None, labels_from_folders: bool,
    labels_file: Path | None, labels_path: Path | None, count: int, input_size: int | None, json_path: Path | None,
    html_path: Path | None, threads: int | None, debug: bool,
) -> int:
    """Compare exported SHViT models (.onnx, .tflite, .mlpackage) with the PyTorch reference.

    Each artifact runs in its own runtime in a subprocess on the same images as PyTorch: max and
    mean |Δ| of the logits, cosine, PSNR, top-1/top-5 agreement and, with labelled images, top-1/top-5
    accuracy beside PyTorch's. Exits non-zero if any artifact is outside its target/precision
    tolerance, crashes its runtime or does not match the reference's variant or input size.
    """
    from convert.source import load_source

    if (labels_from_folders or labels_file) and images_dir is None:
        raise click.UsageError("--labels-from-folders/--labels-file need --images DIR")
    if labels_from_folders and labels_file is not None:
        raise click.UsageError("pass either --labels-from-folders or --labels-file, not both")
    if count < 0:
        raise click.UsageError(f"--count must be 0 (all images) or more, not {count}")
    if threads is not None and threads < 1:
        raise click.UsageError(f"--threads must be at least 1, not {threads}")
    for path, option in ((json_path, "--json"), (html_path, "--html")):
        if path is not None:
            check_output_path(path, option=option)
    paths = artifact_paths(artifacts)
    check_image_folders({"--images": images_dir})
    variant = variant.lower()
    _log(f"→ reading {len(paths)} artifact{'s' if len(paths) > 1 else ''}")
    infos = [inspect(p) for p in paths]
    size, size_origin = resolve_input_size(input_size, infos, variant)
    config = ExportConfig(variant=variant, target="onnx", out_dir=Path("."), weights=weights, input_size=size, labels=labels_path)
    _log(f"→ loading SHViT-{variant.upper()} ({weights}) at {size}×{size} (input size from {size_origin})")
    source = load_source(config)
    named = sidecar_labels(infos, num_classes=source.num_classes) if labels_path is None else None
    if named is not None:
        labels_path, source.labels = named
        _log(f"→ class names from {labels_path} (named in the artifacts' sidecars)")
    images = load_images(images_dir, size=size, count=count, class_names=source.labels, labels_from_folders=labels_from_folders,
                         labels_file=labels_file, sorted_order=labels_path is None and source.num_classes == 1000)
    _log(f"→ images: {images.description}")
    report = check_artifacts(infos, source=source, images=images, threads=threads)
    click.echo("\n".join(format_table(report)))
    if json_path is not None:
        write_json(report, json_path)
        _log(f"→ wrote {json_path}")
    if html_path is not None:
        write_html(report, html_path)
        _log(f"→ wrote {html_path}")
    return 0 if report.passed else EXIT_ERROR


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_command(check_command, argv))


if __name__ == "__main__":
    main()
