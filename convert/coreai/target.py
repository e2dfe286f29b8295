"""The Core AI target: an ``.aimodel`` asset for iOS and macOS 27, checked here with Apple's own Linux runtime.

Unlike Core ML packages, Core AI assets run on Linux in ``coreai-core``'s reference runtime, so
parity is Apple's code against PyTorch, not an emulator's. Its timings are a CPU reference path,
not a device figure, and the benchmark says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.io.scratch import Scratch
from convert.io.staging import Staging
from convert.parity import Tolerance
from convert.targets import ArtifactFacts, ExportContext, Log, PlainBaseline, Step, TargetOption

if TYPE_CHECKING:
    from convert.source import ModelSource

COREAI_FP32 = Tolerance(max_rel=1e-4)
COREAI_FP16 = Tolerance(cosine=0.9995)
COMPRESSION_BLOCKED = (
    "compressed Core AI weights need coreai-opt, and every coreai-opt release requires numpy >= 2, which cannot be "
    "installed beside this toolkit's numpy 1.26.4 (pinned by onnx2tf): export fp16 or fp32"
)


class CoreAITarget:
    name = "coreai"
    suffix = ".aimodel"
    bundle = True
    summary = ".aimodel for iOS/macOS 27 (Core AI; fp16/fp32 — compressed weights need coreai-opt, blocked by numpy < 2)"
    precisions = ("fp16", "fp32")
    default_precision = "fp16"
    calibrated: frozenset[str] = frozenset()
    unavailable = {"int8-weights": COMPRESSION_BLOCKED, "int4-weights": COMPRESSION_BLOCKED}
    tolerances = {"fp32": COREAI_FP32, "fp16": COREAI_FP16}
    options: tuple[TargetOption, ...] = ()
    demo_platform = "ios-coreai"
    baseline = PlainBaseline("fp32", "coreai-torch defaults on the unfused model (torch.export, decompositions, to_coreai)",
                             not_comparable="a plain tensor-input program without the pixel front end: not checked against PyTorch here")

    def resolve_options(self, precision: str, given: dict[str, Any]) -> dict[str, Any]:
        return {}

    def extra_files(self, stem: str) -> list[str]:
        return []

    def export(self, context: ExportContext, staging: Staging) -> dict[str, Any]:
        from convert.coreai.export import INPUT_NAME, LOGITS_NAME, MINIMUM_OS, save_aimodel, to_aimodel
        from convert.coreai.inspect import facts

        source = context.source
        weights = source.weights_info
        metadata = {"variant": source.variant, "weights_source": weights.get("source", "unknown"),
                    "weights_sha256": weights.get("sha256", "none (random initialisation)")}
        context.log(f"→ converting with coreai-torch (torch.export, {context.precision}, minimum OS {MINIMUM_OS})")
        with context.scratch.hosting():
            model = to_aimodel(source.deploy, input_size=context.input_size, labels=source.labels, precision=context.precision,
                               metadata=metadata)
            path = save_aimodel(model, staging.path(context.stem + self.suffix))
        read = facts(path)
        context.log(f"  {read['ops']} ops ({sum(read['graph_ops'].values())} in the main graph), minimum OS {read['minimum_os']}")
        return {
            "input": {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "range": "RGB 0-255, normalisation baked in"},
            "output": {"name": LOGITS_NAME, "classes": source.num_classes},
            "ops": read["ops"], "op_counts": read["op_histogram"], "graph_ops": read["graph_ops"],
            "minimum_os": read["minimum_os"], "labels": "creator metadata 'shvit.labels'",
        }

    def run(self, path: Path, pixels: np.ndarray) -> tuple[np.ndarray, str]:
        from convert.coreai.runtime import run

        return run(path, pixels)

    def inspect(self, path: Path) -> ArtifactFacts:
        from convert.coreai.inspect import facts

        read = facts(path)
        return ArtifactFacts(input_size=read["input_size"], num_classes=read["num_classes"], precision=read["precision"],
                             ops=read["ops"], extra={"minimum_os": read["minimum_os"], "labels": read["labels"]})

    def timer(self, path: Path, pixels: np.ndarray, *, threads: int) -> tuple[Step, str]:
        from convert.coreai.runtime import timing_step

        return timing_step(path, input_size=pixels.shape[1], threads=threads)

    def latency_unavailable(self) -> str | None:
        return None

    def export_plain(self, source: ModelSource, path: Path, *, scratch: Scratch, log: Log) -> None:
        """coreai-torch's defaults on the unfused model: what our asset's op count is measured against."""
        from convert.coreai.export import plain_conversion

        with scratch.hosting():
            program = plain_conversion(source.reference, source.input_size)
            program.save_asset(path)


TARGET = CoreAITarget()
