"""ONNX Runtime on CPU: how the parity run, the timer and the checker open an ``.onnx`` artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convert.targets import ArtifactFacts, Loaded, RuntimeBase, Step


def spatial_size(shape: list[int | None]) -> int | None:
    """H of an NCHW or NHWC image input (whichever axis holds the 3 channels)."""
    if len(shape) != 4:
        return None
    height = shape[2] if shape[1] == 3 and shape[3] != 3 else shape[1]
    return height if isinstance(height, int) and height > 0 else None


class ONNXRuntime(RuntimeBase):
    def open(self, path: Path, *, threads: int | None) -> Loaded:
        session, runtime = _session(path, threads=threads or 0)
        inp = session.get_inputs()[0]
        expected = inp.shape

        def predict(pixels: np.ndarray) -> np.ndarray:
            x = pixels.astype(np.float32).transpose(0, 3, 1, 2)
            if len(expected) != 4 or any(isinstance(d, int) and d != s for d, s in zip(expected[1:], x.shape[1:])):
                raise ValueError(f"model input {inp.name} has shape {expected}, images are {list(x.shape)}: wrong variant or input size?")
            if isinstance(expected[0], int):  # a fixed batch: one image at a time
                return np.concatenate([session.run(None, {inp.name: x[i : i + 1]})[0] for i in range(len(x))])
            return np.asarray(session.run(None, {inp.name: x})[0])

        def prepare(pixels: np.ndarray) -> Step:
            feed = {inp.name: pixels.astype(np.float32).transpose(0, 3, 1, 2).copy()}
            return lambda: session.run(None, feed)

        return Loaded(predict, runtime, prepare)

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
        return ArtifactFacts(
            input_size=spatial_size(dims), num_classes=out_dims[-1] if out_dims else None, precision=precision, ops=len(graph.node)
        )


def _session(path: Path, *, threads: int) -> tuple[Any, str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    shown = f", {threads} thread(s)" if threads else ""
    return session, f"ONNX Runtime {ort.__version__} (CPU){shown}"


RUNTIME = ONNXRuntime()
