"""The Core AI target: an ``.aimodel`` asset for iOS and macOS 27, checked here with Apple's own Linux runtime.

Unlike Core ML packages, Core AI assets run on Linux in ``coreai-core``'s reference runtime, so
parity is Apple's code against PyTorch, not an emulator's, for every precision (compressed weights
included). Its timings are a CPU reference path, not a device figure, and the benchmark says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convert.coreai.compress import W8A8_REFUSED
from convert.io.scratch import Scratch
from convert.io.staging import Staging
from convert.parity import Tolerance
from convert.targets import ExportContext, ExportRecord, Log, PlainBaseline, Runtime, TargetBase, TargetOption
from shvit.provenance import weights_digest

if TYPE_CHECKING:
    from convert.source import ModelSource

COREAI_FP32 = Tolerance(max_rel=1e-4)
COREAI_FP16 = Tolerance(cosine=0.9995)
COREAI_INT8_WEIGHTS = Tolerance(cosine=0.999)
"""int8 per output channel, activations fp16. Measured mean cosine to PyTorch (image-dependent models,
Linux runtime): S1 0.99975-0.99978, S3 0.99965, tiny trained 0.99998."""
COREAI_INT4_WEIGHTS = Tolerance(cosine=0.97)
"""int4 per block of 32 input channels, asymmetric, activations fp16. Measured: S1 0.9868-0.9883,
S3 0.9864, tiny trained 0.9979 (its worst image 0.973); data-free 4-bit costs more than int8."""


class CoreAITarget(TargetBase):
    name = "coreai"
    suffix = ".aimodel"
    bundle = True
    summary = (
        ".aimodel for iOS/macOS 27 (Core AI; int8-weights = int8 per channel, int4-weights = int4 per block of 32: "
        "weights only, activations fp16)"
    )
    precisions = ("fp16", "fp32", "int8-weights", "int4-weights")
    default_precision = "fp16"
    calibrated: frozenset[str] = frozenset()
    unavailable = {"int8": W8A8_REFUSED}
    tolerances = {"fp32": COREAI_FP32, "fp16": COREAI_FP16, "int8-weights": COREAI_INT8_WEIGHTS, "int4-weights": COREAI_INT4_WEIGHTS}
    options: tuple[TargetOption, ...] = ()
    demo_platform = "ios-coreai"
    baseline = PlainBaseline(
        "fp32",
        "coreai-torch defaults on the unfused model (torch.export, decompositions, to_coreai)",
        not_comparable="a plain tensor-input program without the pixel front end: not checked against PyTorch here",
    )

    def resolve_options(self, precision: str, given: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def extra_files(self, stem: str) -> list[str]:
        return []

    def export(self, context: ExportContext, staging: Staging) -> ExportRecord:
        from convert.coreai.compress import COMPRESSIONS, skipped_summary
        from convert.coreai.export import INPUT_NAME, LOGITS_NAME, MINIMUM_OS, save_aimodel, to_aimodel
        from convert.coreai.inspect import facts

        source = context.source
        weights = source.weights_info
        compression = COMPRESSIONS.get(context.precision)
        metadata = {
            "variant": source.variant,
            "weights_source": str(weights.get("source", "unknown")),
            "weights_sha256": weights_digest(weights),
        }
        context.log(
            f"→ converting with coreai-torch (torch.export, {'fp16' if compression else context.precision}, minimum OS {MINIMUM_OS})"
        )
        if compression is not None:
            context.log(f"→ compressing weights with coreai-opt: {compression.describe()}")
        model = to_aimodel(
            source.deploy, input_size=context.input_size, labels=source.labels, precision=context.precision, metadata=metadata
        )
        path = save_aimodel(model, staging.path(context.stem + self.suffix))
        read = facts(path)
        context.log(
            f"  {read['ops']} ops ({sum(read['graph_ops'].values())} in the main graph), minimum OS {read['minimum_os']}, "
            f"{read['size_bytes'] / 1e6:.1f} MB"
        )
        details: dict[str, Any] = {
            "ops": read["ops"],
            "op_counts": read["op_histogram"],
            "graph_ops": read["graph_ops"],
            "minimum_os": read["minimum_os"],
            "labels": "creator metadata 'shvit.labels'",
            "size_bytes": read["size_bytes"],
            "storage_types": read["storage_types"],
        }
        if compression is not None:
            skipped = skipped_summary(list(model.notes))
            stored = read["storage_types"]
            compressed = sum(n for kind, n in stored.items() if kind.lstrip("U") == f"Int{compression.bits}")
            share = compressed / max(1, sum(stored.values()))
            context.log(
                f"  {read['decompression_ops']} weights stored {compression.dtype} ({share:.1%} of stored elements)"
                + (f"; {skipped}" if skipped else "")
            )
            details["weight_compression"] = {
                **compression.record(),
                "description": compression.describe(),
                "compressed_weights": read["decompression_ops"],
                "compressed_share": round(share, 4),
                "left_fp16": skipped or None,
            }
        return ExportRecord(
            input={"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "range": "RGB 0-255, normalisation baked in"},
            output={"name": LOGITS_NAME, "classes": source.num_classes},
            details=details,
        )

    @property
    def runtime(self) -> Runtime:
        from convert.coreai.runtime import RUNTIME

        return RUNTIME

    def export_plain(self, source: ModelSource, path: Path, *, scratch: Scratch, log: Log) -> None:
        """coreai-torch's defaults on the unfused model: what our asset's op count is measured against."""
        from convert.coreai.export import plain_conversion

        program = plain_conversion(source.reference, source.input_size)
        program.save_asset(path)


TARGET = CoreAITarget()
