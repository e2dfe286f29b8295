"""Deploy model → Core ML classifier ``.mlpackage`` (ML Program, image in, probabilities + label out).

The package takes an ``ImageType`` (RGB, scale 1, bias −255·mean: Core ML applies it in fp32
before anything else) so an app hands over a ``CVPixelBuffer`` or a Vision request unchanged;
``1/(255·std)`` lives in the stem conv (see :mod:`convert.coreml.graph`). ``ClassifierConfig``
adds the labels and the ``classify`` op, so Vision returns ``VNClassificationObservation``s; the
logits feeding the softmax are kept as an extra ``logits`` output, which is what parity compares
on macOS (the reference executor reads the same variable on Linux).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from convert.coreml.ctimport import import_coremltools, quiet
from convert.coreml.graph import CoreMLClassifierGraph
from convert.coreml.metadata import PackageInfo, apply_metadata
from convert.coreml.rules import resolve_min_ios
from convert.errors import ArgumentError
from convert.int8.engine import Int8Options

if TYPE_CHECKING:
    from shvit.model import SHViT

INPUT_NAME = "image"
PROBS_NAME = "probs"
LOGITS_NAME = "logits"

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


def to_mlmodel(deploy: nn.Module, **options: Any) -> Any:
    """The classifier ``ct.models.MLModel`` for ``deploy`` (a :func:`shvit.reparameterize`d model), not saved.

    Keywords as :func:`classifier`, which also returns the int8 report of an accuracy-aware W8A8.
    """
    return classifier(deploy, **options)[0]


def classifier(
    deploy: nn.Module,
    *,
    input_size: int,
    labels: list[str],
    precision: str = "fp16",
    min_ios: str = "16",
    calib_pixels: np.ndarray | None = None,
    info: PackageInfo | None = None,
    int8: Int8Options | None = None,
    log: Log | None = None,
) -> tuple[Any, dict[str, Any] | None]:
    """The classifier MLModel and, for ``int8`` (W8A8), its int8 report.

    ``precision`` ``int8`` needs ``calib_pixels`` (uint8 RGB, N×H×W×3, the evaluation preprocessing)
    and ``min_ios`` 17 or later; ``int8`` (:class:`convert.int8.engine.Int8Options`, default auto) says
    how it is made: mode auto/full, ops kept fp16, calibration method.
    """
    say = log or (lambda _message: None)
    _check_options(precision, min_ios, calib_pixels, labels, deploy)
    say(f"→ converting to a Core ML ML Program (iOS {min_ios}+, {'fp32' if precision == 'fp32' else 'fp16'} compute)")
    mlmodel = convert_classifier(deploy, input_size=input_size, labels=labels, fp32=precision == "fp32", min_ios=min_ios)
    int8_report = None
    if precision == "int8":
        mlmodel, int8_report = _accuracy_aware_w8a8(mlmodel, np.asarray(calib_pixels), int8 or Int8Options(), say=say)
    if precision == "int8-weights":
        from convert.coreml.quantize import quantize_weights

        say("→ quantising weights to int8 (linear symmetric, per output channel)")
        with quiet():
            mlmodel = quantize_weights(mlmodel)
    if info is not None:
        apply_metadata(mlmodel, info, image_input=INPUT_NAME, logits_output=LOGITS_NAME)
    return mlmodel, int8_report


def export_coreml(deploy: nn.Module, path: Path, **options: Any) -> CoreMLExport:
    """:func:`to_mlmodel` saved to ``path``, with what the package holds."""
    path = Path(path)
    precision, min_ios = options.get("precision", "fp16"), options.get("min_ios", "16")
    mlmodel, int8_report = classifier(deploy, **options)
    mlmodel.save(str(path))
    spec = import_coremltools().utils.load_spec(str(path))
    counts = op_counts(spec)
    return CoreMLExport(
        path=path,
        precision=precision,
        min_ios=min_ios,
        spec_version=int(spec.specificationVersion),
        op_counts=counts,
        non_const_ops=non_const_op_count(counts),
        size_bytes=package_size(path),
        int8_report=int8_report,
    )


def _accuracy_aware_w8a8(mlmodel: Any, pixels: np.ndarray, options: Int8Options, *, say: Log) -> tuple[Any, dict[str, Any]]:
    """W8A8 with the fewest ops kept fp16 (:mod:`convert.coreml.int8_mixed`); weights int8 already."""
    from convert.coreml.int8_mixed import convert_w8a8

    with tempfile.TemporaryDirectory(prefix="shvit-coreml-int8-") as folder:
        scratch = Path(folder)
        float_path = scratch / "float.mlpackage"
        mlmodel.save(str(float_path))
        say(
            f"→ int8 ({options.mode}, {options.calibration} ranges): analysing every quantised op on {len(pixels)} images (reference MIL executor)"
        )
        model, report = convert_w8a8(float_path, pixels, options=options, scratch=scratch)
        say(
            f"  {len(report.keep_float)} ops kept fp16; min cosine {report.final.min_cosine:.4f}, top-1 {report.final.top1:.0%} on calibration images"
        )
        return model, report.as_dict()


def convert_classifier(deploy: nn.Module, *, input_size: int, labels: list[str], fp32: bool = False, min_ios: str = "16") -> Any:
    """The float classifier MLModel (not saved): traced Core ML-friendly graph, image in, classify out."""
    ct = import_coremltools()
    graph = CoreMLClassifierGraph(cast("SHViT", deploy)).eval()  # a deploy-mode SHViT; the graph checks its stem
    example = torch.zeros(1, 3, input_size, input_size)
    image = ct.ImageType(
        name=INPUT_NAME, shape=(1, 3, input_size, input_size), scale=1.0, bias=list(graph.pixel_bias), color_layout=ct.colorlayout.RGB
    )
    precision = ct.precision.FLOAT32 if fp32 else ct.precision.FLOAT16
    target = _target(min_ios)
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(graph, example)
        program = ct.convert(
            traced,
            inputs=[image],
            outputs=[ct.TensorType(name=PROBS_NAME), ct.TensorType(name=LOGITS_NAME)],
            minimum_deployment_target=target,
            convert_to="milinternal",
            compute_precision=precision,
        )
        # The classify op replaces the probabilities output, so the per-output types given above no
        # longer line up; the program is already optimised, hence the empty pass pipeline.
        program.functions["main"].set_output_types(None)
        return ct.convert(
            program,
            classifier_config=ct.ClassifierConfig(list(labels), predicted_probabilities_output=PROBS_NAME),
            minimum_deployment_target=target,
            convert_to="mlprogram",
            compute_precision=precision,
            pass_pipeline=ct.PassPipeline.EMPTY,
        )


def plain_conversion(module: nn.Module, size: int) -> Any:
    """The baseline our package is measured against: coremltools' defaults on the traced fused model
    (tensor input, iOS 16, fp16), with none of this package's graph rewrites or image front end."""
    ct = import_coremltools()
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(module.eval(), torch.zeros(1, 3, size, size))
        return ct.convert(
            traced,
            inputs=[ct.TensorType(name="x", shape=(1, 3, size, size))],
            minimum_deployment_target=ct.target.iOS16,
            convert_to="mlprogram",
        )


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
    resolve_min_ios(precision, min_ios)
    if precision == "int8" and (calib_pixels is None or len(calib_pixels) == 0):
        raise ArgumentError("int8 calibrates activations on images: give a folder of photos", argument="calib")
    classes = getattr(getattr(deploy, "head", None), "out_features", None)
    if classes is not None and classes != len(labels):
        raise ArgumentError(f"{len(labels)} labels for a model with {classes} classes: give one label per class", argument="labels")


def _target(min_ios: str) -> Any:
    ct = import_coremltools()
    return {"16": ct.target.iOS16, "17": ct.target.iOS17, "18": ct.target.iOS18}[min_ios]
