"""The Core ML target: an ``.mlpackage`` classifier (ML Program) for iOS and macOS.

Off macOS, Core ML cannot run: parity is checked by the reference MIL executor
(:mod:`convert.coreml.mil_executor`) on the same package, and the output says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.coreml.rules import DEFAULT_MIN_IOS, MIN_IOS_CHOICES, PRECISIONS, W8A8_MIN_IOS, resolve_min_ios
from convert.int8.options import OPTIONS as INT8_OPTIONS
from convert.int8.options import int8_options, resolve_int8
from convert.int8.report import INT8_TARGET, describe_outcome, log_int8_report
from convert.io.scratch import Scratch
from convert.io.staging import Staging
from convert.parity import Tolerance
from convert.targets import ExportContext, ExportRecord, Log, PlainBaseline, Runtime, TargetBase, TargetOption

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

    @property
    def runtime(self) -> Runtime:
        from convert.coreml.runtime import RUNTIME

        return RUNTIME

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


TARGET = CoreMLTarget()
