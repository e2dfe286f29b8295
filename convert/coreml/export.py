"""Deploy model → Core ML classifier ``.mlpackage`` (ML Program, image in, probabilities + label out).

The package takes an ``ImageType`` (RGB, scale 1, bias −255·mean: Core ML applies it in fp32
before anything else) so an app hands over a ``CVPixelBuffer`` or a Vision request unchanged;
``1/(255·std)`` lives in the stem conv (see :mod:`convert.coreml.graph`). ``ClassifierConfig``
adds the labels and the ``classify`` op, so Vision returns ``VNClassificationObservation``s; the
logits feeding the softmax are kept as an extra ``logits`` output, which is what parity compares
on macOS (the reference executor reads the same variable on Linux).
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from convert.config import W8A8_MIN_IOS
from convert.coreml.ctimport import import_coremltools, quiet
from convert.coreml.graph import PIXEL_BIAS, CoreMLClassifierGraph
from convert.coreml.metadata import PackageInfo, apply_metadata
from convert.errors import ConvertError

if TYPE_CHECKING:
    from convert.coreml.int8_mixed import CoreMLInt8Options

INPUT_NAME = "image"
PROBS_NAME = "probs"
LOGITS_NAME = "logits"
PRECISIONS: tuple[str, ...] = ("fp16", "fp32", "int8-weights", "int8")
MIN_IOS: tuple[str, ...] = ("16", "17", "18")

Log = Callable[[str], None]


@dataclass(frozen=True)
class CoreMLExport:
    """What was written, for the sidecar and the benchmark."""

    path: Path
    precision: str
    min_ios: str
    spec_version: int
    op_counts: dict[str, int]
    non_const_ops: int
    size_bytes: int
    int8_report: dict[str, Any] | None = None
    """For accuracy-aware ``int8`` (``int8=`` given): :class:`convert.int8.report.Int8Report` as a dict."""

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["path"] = str(self.path)
        return record


def export_coreml(
    deploy: nn.Module,
    path: Path,
    *,
    input_size: int,
    labels: list[str],
    precision: str = "fp16",
    min_ios: str = "16",
    calib_pixels: np.ndarray | None = None,
    info: PackageInfo | None = None,
    int8: CoreMLInt8Options | None = None,
    progress: bool = False,
    log: Log | None = None,
) -> CoreMLExport:
    """Write the classifier package for ``deploy`` (a :func:`shvit.reparameterize`d model) to ``path``.

    ``precision`` ``int8`` (W8A8) needs ``calib_pixels`` (uint8 RGB, N×H×W×3, the evaluation
    preprocessing) and ``min_ios`` 17 or later. ``int8`` (a :class:`convert.coreml.int8_mixed.CoreMLInt8Options`)
    makes it accuracy-aware (mode auto/full, ops kept fp16, calibration method); ``None`` keeps today's W8A8.
    """
    say = log or (lambda _message: None)
    _check_options(precision, min_ios, calib_pixels, labels, deploy)
    path = Path(path)
    say(f"→ converting to a Core ML ML Program (iOS {min_ios}+, {'fp32' if precision == 'fp32' else 'fp16'} compute)")
    mlmodel = convert_classifier(deploy, input_size=input_size, labels=labels, fp32=precision == "fp32", min_ios=min_ios)
    int8_report = None
    if precision == "int8" and int8 is not None:
        mlmodel, int8_report = _accuracy_aware_w8a8(mlmodel, np.asarray(calib_pixels), int8, scratch_parent=path.parent, say=say)
    elif precision == "int8":
        mlmodel = _quantize_activations(mlmodel, np.asarray(calib_pixels), scratch_parent=path.parent, progress=progress, say=say)
    if precision == "int8-weights" or (precision == "int8" and int8 is None):
        from convert.coreml.quantize import quantize_weights

        if precision == "int8-weights":
            say("→ quantising weights to int8 (linear symmetric, per output channel)")
        with quiet():
            mlmodel = quantize_weights(mlmodel)
    if info is not None:
        apply_metadata(mlmodel, info, image_input=INPUT_NAME, logits_output=LOGITS_NAME)
    mlmodel.save(str(path))
    spec = mlmodel.get_spec()
    counts = op_counts(spec)
    return CoreMLExport(
        path=path, precision=precision, min_ios=min_ios, spec_version=int(spec.specificationVersion),
        op_counts=counts, non_const_ops=non_const_op_count(counts), size_bytes=package_size(path), int8_report=int8_report,
    )


def _accuracy_aware_w8a8(mlmodel: Any, pixels: np.ndarray, options: CoreMLInt8Options, *, scratch_parent: Path, say: Log) -> tuple[Any, dict[str, Any]]:
    """W8A8 with the fewest ops kept fp16 (:mod:`convert.coreml.int8_mixed`); weights int8 already."""
    from convert.coreml.int8_mixed import convert_w8a8

    with _scratch_dir(scratch_parent) as scratch:
        float_path = scratch / "float.mlpackage"
        mlmodel.save(str(float_path))
        say(f"→ int8 ({options.mode}, {options.calibration} ranges): analysing every quantised op on {len(pixels)} images (reference MIL executor)")
        model, report = convert_w8a8(float_path, pixels, options=options, scratch=scratch)
        say(f"  {len(report.keep_float)} ops kept fp16; min cosine {report.final.min_cosine:.4f}, top-1 {report.final.top1:.0%} on calibration images")
        return model, report.as_dict()


def _quantize_activations(mlmodel: Any, pixels: np.ndarray, *, scratch_parent: Path, progress: bool, say: Log) -> Any:
    """W8A8 activations: ranges measured by the reference executor on the saved float package."""
    from convert.coreml.quantize import activation_stats, quantize_activations

    ct = import_coremltools()
    with _scratch_dir(scratch_parent) as scratch:
        float_path = scratch / "float.mlpackage"
        mlmodel.save(str(float_path))
        say(f"→ measuring activation ranges on {len(pixels)} calibration images (reference MIL executor)")
        stats = activation_stats(float_path, pixels, progress=progress)
        say("→ inserting int8 quantize/dequantize pairs (coremltools passes) and quantising weights to int8")
        with quiet():
            return quantize_activations(ct.models.MLModel(str(float_path), skip_model_load=True), stats)


def convert_classifier(deploy: nn.Module, *, input_size: int, labels: list[str], fp32: bool = False, min_ios: str = "16") -> Any:
    """The float classifier MLModel (not saved): traced Core ML-friendly graph, image in, classify out."""
    ct = import_coremltools()
    graph = CoreMLClassifierGraph(deploy).eval()
    example = torch.zeros(1, 3, input_size, input_size)
    image = ct.ImageType(
        name=INPUT_NAME, shape=(1, 3, input_size, input_size), scale=1.0, bias=list(PIXEL_BIAS), color_layout=ct.colorlayout.RGB
    )
    precision = ct.precision.FLOAT32 if fp32 else ct.precision.FLOAT16
    target = _target(min_ios)
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(graph, example)
        program = ct.convert(
            traced, inputs=[image], outputs=[ct.TensorType(name=PROBS_NAME), ct.TensorType(name=LOGITS_NAME)],
            minimum_deployment_target=target, convert_to="milinternal", compute_precision=precision,
        )
        # The classify op replaces the probabilities output, so the per-output types given above no
        # longer line up; the program is already optimised, hence the empty pass pipeline.
        program.functions["main"].set_output_types(None)
        return ct.convert(
            program, classifier_config=ct.ClassifierConfig(list(labels), predicted_probabilities_output=PROBS_NAME),
            minimum_deployment_target=target, convert_to="mlprogram", compute_precision=precision,
            pass_pipeline=ct.PassPipeline.EMPTY,
        )


def plain_conversion(module: nn.Module, size: int) -> Any:
    """The baseline our package is measured against: coremltools' defaults on the traced fused model
    (tensor input, iOS 16, fp16), with none of this package's graph rewrites or image front end."""
    ct = import_coremltools()
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(module.eval(), torch.zeros(1, 3, size, size))
        return ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1, 3, size, size))],
                          minimum_deployment_target=ct.target.iOS16, convert_to="mlprogram")


def op_counts(spec: Any) -> dict[str, int]:
    """Op types of the main function (every op, consts included), sorted by name."""
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    return dict(sorted(Counter(op.type for op in block.operations).items()))


def non_const_op_count(counts: dict[str, int]) -> int:
    """Ops that run per prediction: everything but ``const`` and load-time ``constexpr_*`` weight decompression."""
    return sum(n for op, n in counts.items() if op != "const" and not op.startswith("constexpr_"))


def package_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _check_options(precision: str, min_ios: str, calib_pixels: np.ndarray | None, labels: list[str], deploy: nn.Module) -> None:
    if precision not in PRECISIONS:
        raise ConvertError(f"Core ML precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if min_ios not in MIN_IOS:
        raise ConvertError(f"--min-ios {min_ios} is not supported: choose one of {', '.join(MIN_IOS)}")
    if precision == "int8" and int(min_ios) < int(W8A8_MIN_IOS):
        raise ConvertError(
            f"--precision int8 (W8A8) needs iOS {W8A8_MIN_IOS} or later for its activation quantize ops: "
            f"pass --min-ios {W8A8_MIN_IOS} (or leave --min-ios out), or use --precision int8-weights for iOS {min_ios}"
        )
    if precision == "int8" and (calib_pixels is None or len(calib_pixels) == 0):
        raise ConvertError("--precision int8 calibrates activations on images: pass --calib DIR")
    classes = getattr(getattr(deploy, "head", None), "out_features", None)
    if classes is not None and classes != len(labels):
        raise ConvertError(f"{len(labels)} labels for a model with {classes} classes: give one label per class")


def _target(min_ios: str) -> Any:
    ct = import_coremltools()
    return {"16": ct.target.iOS16, "17": ct.target.iOS17, "18": ct.target.iOS18}[min_ios]


@contextlib.contextmanager
def _scratch_dir(parent: Path) -> Iterator[Path]:
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=".shvit-coreml-", dir=parent))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def EXTRA_FILES(config: Any) -> list[str]:  # noqa: N802 - the pipeline's per-target hook
    return []


def export(source: Any, config: Any, staging: Any, *, log: Log) -> dict[str, Any]:
    """Pipeline hook: the classifier package for ``source`` in ``config.precision``."""
    calib_pixels = None
    calibration = None
    if config.precision == "int8":
        import calib

        found = calib.load_folder(config.calib_dir, size=config.input_size, count=config.calib_count, progress=config.progress)
        calib_pixels = found.pixels
        calibration = f"{len(found.pixels)} images from {Path(config.calib_dir).name}"
    info = PackageInfo(
        variant=config.variant, input_size=config.input_size, precision=config.precision,
        num_classes=source.num_classes, min_ios=config.min_ios, weights=dict(source.weights_info), calibration=calibration,
    )
    result = export_coreml(
        source.deploy, staging.path(config.artifact_path.name), input_size=config.input_size, labels=source.labels,
        precision=config.precision, min_ios=config.min_ios, calib_pixels=calib_pixels, info=info,
        progress=config.progress, log=log,
    )
    log(f"  {result.non_const_ops} ops per prediction, {result.size_bytes / 1e6:.1f} MB, Core ML spec {result.spec_version}")
    record = result.as_dict()
    record.pop("path")
    record.update(
        input={"name": INPUT_NAME, "type": "image", "color": "RGB", "size": config.input_size, "normalisation": "built in"},
        outputs={"classLabel": "top label", "classLabel_probs": "probabilities", LOGITS_NAME: "pre-softmax logits"},
        calibration=calibration,
    )
    return record
