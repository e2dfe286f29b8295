"""A toy export target, registered from outside the toolkit: ONNX under its own suffix, run by ONNX Runtime.

It shows that a target is one module plus one registry call: export, check, bench and the Python API
take it with no edit anywhere else. :class:`convert.targets.TargetBase` fills in what it does not offer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from convert import targets
from convert.parity import Tolerance
from convert.targets import ExportContext, ExportRecord, Loaded, RuntimeBase, TargetBase, TargetOption


class ToyTarget(TargetBase):
    name = "toy"
    suffix = ".toy"
    summary = "ONNX under another name, run by ONNX Runtime (a toy target for tests)"
    precisions = ("fp32",)
    default_precision = "fp32"
    tolerances = {"fp32": Tolerance(max_rel=1e-4)}
    options = (TargetOption("layout", ("nchw",), "nchw", "Tensor layout of the model (toy target)."),)

    def resolve_options(self, precision: str, given: Mapping[str, Any]) -> dict[str, Any]:
        return {"layout": given.get("layout") or "nchw"}

    def export(self, context: ExportContext, staging: Any) -> ExportRecord:
        from convert.onnx.export import export_onnx  # PyTorch loads here, not in every runtime child

        export_onnx(context.source.pixel_model, staging.path(context.stem + self.suffix), input_size=context.input_size)
        context.log("  toy: the ONNX graph under a .toy name")
        output = {"name": "logits", "classes": context.source.num_classes}
        return ExportRecord(input={"name": "pixels", "layout": "NCHW"}, output=output, details={"layout": context.options["layout"]})

    @property
    def runtime(self) -> ToyRuntime:
        return ToyRuntime()


class ToyRuntime(RuntimeBase):
    def open(self, path: Path, *, threads: int | None) -> Loaded:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def predict(pixels: np.ndarray) -> np.ndarray:
            return session.run(None, {session.get_inputs()[0].name: pixels.astype(np.float32).transpose(0, 3, 1, 2)})[0]

        return Loaded(predict, f"toy runtime (ONNX Runtime {ort.__version__})")


TARGET = ToyTarget()


def register() -> None:
    """Idempotent: the tests register it, and so does a runtime child that imports this module."""
    if TARGET.name not in targets.names():
        targets.register(TARGET)


register()
