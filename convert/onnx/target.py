"""The ONNX target: a simplified, dynamic-batch NCHW float model for ONNX Runtime."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from convert.config import DEFAULT_OPSET
from convert.io.staging import Staging
from convert.parity import Tolerance
from convert.targets import ArtifactFacts, ExportContext, Step, TargetOption

ONNX_FP32 = Tolerance(max_rel=1e-4)
THREADS_ENV = "SHVIT_THREADS"


def spatial_size(shape: list[int | None]) -> int | None:
    """H of an NCHW or NHWC image input (whichever axis holds the 3 channels)."""
    if len(shape) != 4:
        return None
    height = shape[2] if shape[1] == 3 and shape[3] != 3 else shape[1]
    return height if isinstance(height, int) and height > 0 else None


class ONNXTarget:
    name = "onnx"
    suffix = ".onnx"
    bundle = False
    summary = "NCHW float model for ONNX Runtime"
    precisions = ("fp32",)
    default_precision = "fp32"
    calibrated: frozenset[str] = frozenset()
    unavailable: dict[str, str] = {}
    tolerances = {"fp32": ONNX_FP32}
    options: tuple[TargetOption, ...] = ()
    demo_platform = None

    def resolve_options(self, precision: str, given: dict[str, Any]) -> dict[str, Any]:
        return {"opset": DEFAULT_OPSET}

    def extra_files(self, stem: str) -> list[str]:
        return []

    def export(self, context: ExportContext, staging: Staging) -> dict[str, Any]:
        from convert.onnx.export import INPUT_NAME, OUTPUT_NAME, export_onnx, op_counts

        opset = context.options["opset"]
        context.log(f"→ exporting ONNX (opset {opset}, onnxsim)")
        model = export_onnx(context.source.pixel_model, staging.path(context.stem + self.suffix), input_size=context.input_size,
                            opset=opset)
        return {"input": {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "range": "RGB 0-255, normalisation baked in"},
                "output": {"name": OUTPUT_NAME, "classes": context.source.num_classes}, "op_counts": op_counts(model)}

    def run(self, path: Path, pixels: np.ndarray) -> tuple[np.ndarray, str]:
        session, runtime = _session(path, threads=int(os.environ.get(THREADS_ENV, "0")))
        inp = session.get_inputs()[0]
        x = pixels.astype(np.float32).transpose(0, 3, 1, 2)
        expected = inp.shape
        if len(expected) != 4 or any(isinstance(d, int) and d != s for d, s in zip(expected[1:], x.shape[1:])):
            raise ValueError(f"model input {inp.name} has shape {expected}, images are {list(x.shape)}: wrong variant or input size?")
        if isinstance(expected[0], int):
            return np.concatenate([session.run(None, {inp.name: x[i : i + 1]})[0] for i in range(len(x))]), runtime
        return session.run(None, {inp.name: x})[0], runtime

    def inspect(self, path: Path) -> ArtifactFacts:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        graph = model.graph
        initializers = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializers]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
        out_dims = [d.dim_value if d.HasField("dim_value") else None for d in graph.output[0].type.tensor_type.shape.dim]
        ops = {node.op_type for node in graph.node}
        dtypes = {i.data_type for i in graph.initializer}
        if ops & {"QuantizeLinear", "QLinearConv", "QLinearMatMul"}:
            precision = "int8"
        elif onnx.TensorProto.FLOAT16 in dtypes:
            precision = "fp16"
        else:
            precision = "fp32"
        return ArtifactFacts(input_size=spatial_size(dims), num_classes=out_dims[-1] if out_dims else None, precision=precision,
                             ops=len(graph.node))

    def timer(self, path: Path, pixels: np.ndarray, *, threads: int) -> tuple[Step, str]:
        session, runtime = _session(path, threads=threads)
        feed = {session.get_inputs()[0].name: pixels.astype(np.float32).transpose(0, 3, 1, 2).copy()}
        return (lambda: session.run(None, feed)), runtime

    def latency_unavailable(self) -> str | None:
        return None


def _session(path: Path, *, threads: int) -> tuple[Any, str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    shown = f", {threads} thread(s)" if threads else ""
    return session, f"ONNX Runtime {ort.__version__} (CPU){shown}"


TARGET = ONNXTarget()
