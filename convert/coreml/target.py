"""The Core ML target: an ``.mlpackage`` classifier (ML Program) for iOS and macOS.

Off macOS, Core ML cannot run: parity is checked by the reference MIL executor
(:mod:`convert.coreml.mil_executor`) on the same package, and the output says so.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.coreml.rules import DEFAULT_MIN_IOS, MIN_IOS_CHOICES, PRECISIONS, W8A8_MIN_IOS, resolve_min_ios
from convert.errors import ConvertError
from convert.int8.options import OPTIONS as INT8_OPTIONS
from convert.int8.options import int8_options, resolve_int8
from convert.int8.report import INT8_TARGET, describe_outcome, log_int8_report
from convert.io.scratch import Scratch
from convert.io.staging import Staging
from convert.parity import Tolerance
from convert.targets import ArtifactFacts, ExportContext, ExportRecord, Log, PlainBaseline, Step, TargetBase, TargetOption

if TYPE_CHECKING:
    from convert.source import ModelSource

COREML_FP32 = Tolerance(max_rel=1e-3)
COREML_FP16 = Tolerance(cosine=0.9995)
COREML_INT8_WEIGHTS = Tolerance(cosine=0.999)
COREML_INT8 = Tolerance(cosine=INT8_TARGET.min_cosine, top1=INT8_TARGET.top1)
MIN_IOS = TargetOption(
    "min_ios",
    MIN_IOS_CHOICES,
    "auto",
    f"Core ML deployment target. auto: iOS {DEFAULT_MIN_IOS}, or iOS {W8A8_MIN_IOS} for --precision int8 (W8A8 needs iOS {W8A8_MIN_IOS}+).",
)
OFF_MACOS = "unavailable off macOS (Core ML runs only on Apple platforms)"


class CoreMLTarget(TargetBase):
    name = "coreml"
    suffix = ".mlpackage"
    bundle = True
    summary = ".mlpackage classifier for iOS/macOS"
    precisions = PRECISIONS
    default_precision = "fp16"
    calibrated = frozenset({"int8"})
    unavailable: dict[str, str] = {}
    tolerances = {"fp32": COREML_FP32, "fp16": COREML_FP16, "int8-weights": COREML_INT8_WEIGHTS, "int8": COREML_INT8}
    options = (MIN_IOS, *INT8_OPTIONS)
    demo_platform = "ios"
    per_layer_check = True
    baseline = PlainBaseline(
        "fp16",
        "ct.convert of the traced fused model, defaults",
        not_comparable="a tensor-input program without classifier head: not checked against PyTorch here",
    )

    def resolve_options(self, precision: str, given: Mapping[str, Any]) -> dict[str, Any]:
        return {"min_ios": resolve_min_ios(precision, str(given.get("min_ios") or MIN_IOS.default)), **resolve_int8(precision, given)}

    def extra_files(self, stem: str) -> list[str]:
        return []

    def export(self, context: ExportContext, staging: Staging) -> ExportRecord:
        from convert.coreml.export import INPUT_NAME, LOGITS_NAME, export_coreml
        from convert.coreml.metadata import PackageInfo

        source, min_ios = context.source, context.options["min_ios"]
        info = PackageInfo(
            variant=source.variant,
            input_size=context.input_size,
            precision=context.precision,
            num_classes=source.num_classes,
            min_ios=min_ios,
            weights=dict(source.weights_info),
            calibration=context.calib_description,
        )
        int8 = int8_options(context.options, random_weights=context.random_weights) if context.precision == "int8" else None
        result = export_coreml(
            source.deploy,
            staging.path(context.stem + self.suffix),
            input_size=context.input_size,
            labels=source.labels,
            precision=context.precision,
            min_ios=min_ios,
            calib_pixels=context.calib_pixels,
            info=info,
            int8=int8,
            log=context.log,
        )
        context.log(f"  {result.non_const_ops} ops per prediction, {result.size_bytes / 1e6:.1f} MB, Core ML spec {result.spec_version}")
        details = result.as_dict()
        details.pop("path")
        report = details.pop("int8_report")
        if report is not None:
            log_int8_report(report, log=context.log)
        return ExportRecord(
            input={"name": INPUT_NAME, "type": "image", "color": "RGB", "size": context.input_size, "normalisation": "built in"},
            output={
                "name": LOGITS_NAME,
                "classes": source.num_classes,
                "also": {"classLabel": "top label", "classLabel_probs": "probabilities"},
            },
            contents=describe_outcome(report) if report is not None else None,
            int8=report,
            details={**details, "calibration": context.calib_description},
        )

    def run(self, path: Path, pixels: np.ndarray, *, threads: int | None = None) -> tuple[np.ndarray, str]:
        if sys.platform == "darwin":
            return _run_core_ml(path, pixels)
        import torch

        from convert.coreml.mil_executor import MILExecutor

        if threads:
            torch.set_num_threads(threads)
        executor = MILExecutor(path)
        mode = "fp16 emulated" if executor.is_fp16 else "fp32"
        return executor.logits(pixels), f"reference MIL executor, {mode} (Core ML cannot run on Linux)"

    def inspect(self, path: Path) -> ArtifactFacts:
        from convert.coreml.ctimport import import_coremltools
        from convert.onnx.target import spatial_size

        spec = import_coremltools().utils.load_spec(str(path))
        from coremltools.proto import MIL_pb2

        first = spec.description.input[0].type
        if first.WhichOneof("Type") == "imageType":
            size = int(first.imageType.height) or None
        else:
            size = spatial_size([int(d) for d in first.multiArrayType.shape])
        classes = None
        for output in spec.description.output:
            if output.type.WhichOneof("Type") == "multiArrayType" and output.type.multiArrayType.shape:
                classes = int(output.type.multiArrayType.shape[-1])
        precision, runs = None, None
        if spec.WhichOneof("Type") == "mlProgram":
            main = spec.mlProgram.functions["main"]
            operations = list(main.block_specializations[main.opset].operations)
            types = {op.type for op in operations}
            runs = sum(1 for op in operations if op.type != "const" and not op.type.startswith("constexpr_"))
            const_types = {MIL_pb2.DataType.Name(op.attributes["val"].type.tensorType.dataType) for op in operations if op.type == "const"}
            if types & {"quantize", "dequantize"}:
                precision = "int8"
            elif any(name.startswith("constexpr_") for name in types):
                precision = "int8-weights"
            else:
                precision = "fp16" if "FLOAT16" in const_types else "fp32"
        return ArtifactFacts(input_size=size, num_classes=classes, precision=precision, ops=runs)

    def timer(self, path: Path, pixels: np.ndarray, *, threads: int) -> tuple[Step, str]:
        from PIL import Image

        from convert.coreml.ctimport import import_coremltools

        ct = import_coremltools()
        model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
        first = model.get_spec().description.input[0]
        if first.type.WhichOneof("Type") == "imageType":
            feed: dict[str, Any] = {first.name: Image.fromarray(pixels[0])}
        else:
            feed = {first.name: pixels.astype(np.float32).transpose(0, 3, 1, 2)}
        return (lambda: model.predict(feed)), f"Core ML {ct.__version__} (compute units ALL)"

    def latency_unavailable(self) -> str | None:
        return None if sys.platform == "darwin" else OFF_MACOS

    def export_plain(self, source: ModelSource, path: Path, *, scratch: Scratch, log: Log) -> None:
        """coremltools' defaults on the traced fused model: what our package's op count is measured against."""
        from convert.coreml.export import plain_conversion

        plain_conversion(source.deploy, source.input_size).save(str(path))

    def per_layer(self, artifact: Path, source: ModelSource, pixels: np.ndarray, *, scratch: Scratch, log: Log) -> tuple[list[Any], str]:
        """Each quantisable op of the W8A8 ``artifact`` against the fp16 program of ``source`` it was made from."""
        from convert.coreml.export import to_mlmodel
        from convert.coreml.int8_mixed import per_layer_errors, program_min_ios

        min_ios = program_min_ios(Path(artifact))
        with scratch.temporary("shvit-per-layer-") as folder:
            twin = folder / "float.mlpackage"
            log(f"→ converting the float twin (fp16 Core ML, iOS {min_ios}+) to compare op by op in the reference MIL executor")
            to_mlmodel(source.deploy, input_size=source.input_size, labels=source.labels, precision="fp16", min_ios=min_ios).save(str(twin))
            return per_layer_errors(Path(artifact), twin, pixels), f"fp16 Core ML, iOS {min_ios}+, reference MIL executor"


def _run_core_ml(path: Path, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    from PIL import Image

    from convert.coreml.ctimport import import_coremltools
    from convert.coreml.export import LOGITS_NAME

    ct = import_coremltools()
    model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
    description = model.get_spec().description
    if LOGITS_NAME not in {o.name for o in description.output}:
        raise ConvertError(f"{path.name} has no '{LOGITS_NAME}' output to compare: export it with shvit-convert")
    image = description.input[0]
    height, width = image.type.imageType.height, image.type.imageType.width
    if pixels.shape[1:3] != (height, width):
        raise ConvertError(
            f"{path.name} takes {width}x{height} images, got {pixels.shape[2]}x{pixels.shape[1]}: wrong variant or input size?"
        )
    outputs = model.predict([{image.name: Image.fromarray(np.ascontiguousarray(p))} for p in pixels])
    logits = np.stack([np.asarray(o[LOGITS_NAME], dtype=np.float32).reshape(-1) for o in outputs])
    return logits, f"Core ML {ct.__version__} runtime on macOS (compute units: all)"


TARGET = CoreMLTarget()
