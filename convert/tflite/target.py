"""The TFLite target: NHWC models for Android's LiteRT, through ONNX and onnx2tf."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.config import DEFAULT_OPSET
from convert.int8.options import OPTIONS as INT8_OPTIONS
from convert.int8.options import int8_options, resolve_int8
from convert.int8.report import INT8_TARGET, describe_outcome, log_int8_report
from convert.io.scratch import Scratch
from convert.io.staging import Staging
from convert.parity import Tolerance
from convert.targets import ExportContext, ExportRecord, Log, PlainBaseline, Runtime, TargetBase, TargetOption
from convert.tflite.quantize import PRECISIONS

if TYPE_CHECKING:
    from convert.source import ModelSource
    from convert.tflite.gpu_compat import GpuCompatibility

TFLITE_FP32 = Tolerance(max_rel=1e-4)
TFLITE_FP16 = Tolerance(cosine=0.9995)
TFLITE_INT8_WEIGHTS = Tolerance(cosine=0.995)
TFLITE_INT8 = Tolerance(cosine=INT8_TARGET.min_cosine, top1=INT8_TARGET.top1)
LABELS_SUFFIX = ".labels.txt"


def labels_file_name(stem: str) -> str:
    """The label file written beside the model (also packed inside it)."""
    return f"{stem}{LABELS_SUFFIX}"


class TFLiteTarget(TargetBase):
    name = "tflite"
    suffix = ".tflite"
    bundle = False
    summary = "NHWC model for Android (LiteRT)"
    precisions = PRECISIONS
    default_precision = "fp32"
    calibrated = frozenset({"int8"})
    unavailable: dict[str, str] = {}
    tolerances = {"fp32": TFLITE_FP32, "fp16": TFLITE_FP16, "int8-weights": TFLITE_INT8_WEIGHTS, "int8": TFLITE_INT8}
    options: tuple[TargetOption, ...] = INT8_OPTIONS
    demo_platform = "android"
    per_layer_check = True
    baseline = PlainBaseline("fp32", "fused model → ONNX opset 17 → onnx2tf defaults")

    def resolve_options(self, precision: str, given: Mapping[str, Any]) -> dict[str, Any]:
        return {"opset": DEFAULT_OPSET, **resolve_int8(precision, given)}

    def extra_files(self, stem: str) -> list[str]:
        return [labels_file_name(stem)]

    def export(self, context: ExportContext, staging: Staging) -> ExportRecord:
        from convert.tflite import graphinfo, metadata
        from convert.tflite.export import export_tflite, gpu_delegate_record, io_record
        from convert.tflite.quantize import FLOAT_ISLAND_OPS

        started = time.perf_counter()
        source, precision = context.source, context.precision
        artifact = staging.path(context.stem + self.suffix)
        int8 = int8_options(context.options, random_weights=context.random_weights) if precision == "int8" else None
        result = export_tflite(
            source.pixel_model,
            {precision: artifact},
            input_size=context.input_size,
            labels=source.labels,
            name=context.name,
            calib_pixels=context.calib_pixels,
            int8=int8,
            opset=context.options["opset"],
            progress=context.progress,
            scratch=context.scratch,
            log=context.log,
        )[precision]
        labels_file = labels_file_name(context.stem)
        staging.path(labels_file).write_text("\n".join(source.labels) + "\n", encoding="utf-8")
        delegation = graphinfo.delegation(artifact)
        partitions = delegation.partitions
        context.log(f"  graph: {sum(result.op_counts.values())} ops, {partitions} XNNPACK partition{'s' if partitions != 1 else ''}")
        details: dict[str, Any] = {
            "op_counts": result.op_counts,
            **delegation.as_dict(),
            "gpu_delegate": gpu_delegate_record(artifact, log=context.log),
            "labels_file": labels_file,
            "toolchain": result.toolchain,
            "metadata": [metadata.METADATA_NAME, metadata.JSON_NAME],
            "seconds": round(time.perf_counter() - started, 1),
        }
        report = result.int8_report if precision == "int8" else None
        if precision == "int8":
            details["calibration_images"] = len(context.calib_pixels) if context.calib_pixels is not None else 0
            details["float_islands"] = list(FLOAT_ISLAND_OPS)
            log_int8_report(report, log=context.log)
        return ExportRecord(
            input=io_record(result.input, layout="NHWC"),
            output={**io_record(result.output), "classes": context.source.num_classes},
            contents=describe_outcome(report) if report else None,
            int8=report,
            details=details,
        )

    @property
    def runtime(self) -> Runtime:
        from convert.tflite.runtime import RUNTIME

        return RUNTIME

    def gpu_delegate(self, path: Path) -> GpuCompatibility:
        """Which ops of ``path`` the LiteRT GPU delegate would not take (shvit-check and shvit-bench report it)."""
        from convert.tflite.gpu_compat import gpu_compatibility_of

        return gpu_compatibility_of(path)

    def export_plain(self, source: ModelSource, path: Path, *, scratch: Scratch, log: Log) -> None:
        """The plain path: pixel-input fused model → ONNX opset 17 → onnx2tf defaults, no graph rewrite."""
        from convert.tflite.export import export_tflite

        export_tflite(
            source.pixel_model, {"fp32": path}, input_size=source.input_size, labels=source.labels, rewrite=False, scratch=scratch, log=log
        )

    def per_layer(self, artifact: Path, source: ModelSource, pixels: np.ndarray, *, scratch: Scratch, log: Log) -> tuple[list[Any], str]:
        """Each op of the int8 ``artifact`` against the fp32 conversion of ``source`` (converted here, ~1 min for S1)."""
        from convert.tflite.export import export_tflite
        from convert.tflite.int8_mixed import per_layer_errors

        with scratch.temporary("shvit-per-layer-") as folder:
            twin = folder / "float.tflite"
            log("→ converting the float twin (fp32 TFLite, same converter) to compare op by op")
            export_tflite(
                source.pixel_model,
                {"fp32": twin},
                input_size=source.input_size,
                labels=source.labels,
                scratch=scratch,
                log=lambda _message: None,
            )
            return per_layer_errors(Path(artifact).read_bytes(), twin.read_bytes(), pixels), "fp32 TFLite, same converter"


TARGET = TFLiteTarget()
