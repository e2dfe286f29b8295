"""The ONNX target: a simplified, dynamic-batch NCHW float model (fp32 or fp16) for ONNX Runtime."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convert.config import DEFAULT_OPSET
from convert.io.staging import Staging
from convert.parity import Tolerance
from convert.targets import ExportContext, ExportRecord, Runtime, TargetBase, TargetOption

ONNX_FP32 = Tolerance(max_rel=1e-4)
ONNX_FP16 = Tolerance(cosine=0.9995)
"""fp16 weights and activations round every op's output to 11 significant bits, so the logits keep their
direction, not 1e-4 of their scale: the bound is on the cosine, as for the other targets' fp16. Measured in
ONNX Runtime on CPU: tiny trained model 0.999998 (max |Δ| 0.1% of the logit scale), S1 with image-dependent
BN statistics 0.99999 (0.3%)."""


class ONNXTarget(TargetBase):
    name = "onnx"
    suffix = ".onnx"
    bundle = False
    summary = "NCHW float model for ONNX Runtime"
    precisions = ("fp32", "fp16")
    default_precision = "fp32"
    calibrated: frozenset[str] = frozenset()
    unavailable: dict[str, str] = {}
    tolerances = {"fp32": ONNX_FP32, "fp16": ONNX_FP16}
    options: tuple[TargetOption, ...] = ()
    demo_platform = None

    def resolve_options(self, precision: str, given: Mapping[str, Any]) -> dict[str, Any]:
        return {"opset": DEFAULT_OPSET}

    def extra_files(self, stem: str) -> list[str]:
        return []

    def export(self, context: ExportContext, staging: Staging) -> ExportRecord:
        from convert.onnx import metadata
        from convert.onnx.export import INPUT_NAME, OUTPUT_NAME, export_onnx, op_counts, set_metadata

        opset, precision, source = context.options["opset"], context.precision, context.source
        fp16 = ", float16 weights and activations" if precision == "fp16" else ""
        context.log(f"→ exporting ONNX (opset {opset}, onnxsim{fp16})")
        info = metadata.ModelInfo(
            variant=source.variant,
            precision=precision,
            input_size=context.input_size,
            labels=source.labels,
            input_name=INPUT_NAME,
            output_name=OUTPUT_NAME,
            weights=dict(source.weights_info),
        )
        props = metadata.metadata_props(info)

        def describe(model: Any) -> None:
            set_metadata(
                model,
                props,
                doc_string=metadata.doc_string(info),
                producer=metadata.PRODUCER,
                version=props[metadata.META_PREFIX + "toolkit_version"],
            )

        model = export_onnx(
            source.pixel_model,
            staging.path(context.stem + self.suffix),
            input_size=context.input_size,
            opset=opset,
            precision=precision,
            describe=describe,
        )
        return ExportRecord(
            input={"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "range": "RGB 0-255, normalisation baked in"},
            output={"name": OUTPUT_NAME, "classes": source.num_classes, "dtype": "float32"},
            details={
                "compute_dtype": "float16" if precision == "fp16" else "float32",
                "metadata_props": sorted(props),
                "op_counts": op_counts(model),
            },
        )

    @property
    def runtime(self) -> Runtime:
        from convert.onnx.runtime import RUNTIME

        return RUNTIME


TARGET = ONNXTarget()
