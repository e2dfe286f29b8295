"""The ONNX target: a simplified, dynamic-batch NCHW float model (fp32 or fp16) for ONNX Runtime."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from convert.config import DEFAULT_OPSET
from convert.io.staging import Staging
from convert.parity import Tolerance
from convert.targets import ArtifactFacts, ExportContext, ExportRecord, Step, TargetBase, TargetOption

ONNX_FP32 = Tolerance(max_rel=1e-4)
ONNX_FP16 = Tolerance(cosine=0.9995)
"""fp16 weights and activations round every op's output to 11 significant bits, so the logits keep their
direction, not 1e-4 of their scale: the bound is on the cosine, as for the other targets' fp16. Measured in
ONNX Runtime on CPU: tiny trained model 0.999998 (max |Δ| 0.1% of the logit scale), S1 with image-dependent
BN statistics 0.99999 (0.3%)."""


def spatial_size(shape: list[int | None]) -> int | None:
    """H of an NCHW or NHWC image input (whichever axis holds the 3 channels)."""
    if len(shape) != 4:
        return None
    height = shape[2] if shape[1] == 3 and shape[3] != 3 else shape[1]
    return height if isinstance(height, int) and height > 0 else None


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

    def run(self, path: Path, pixels: np.ndarray, *, threads: int | None = None) -> tuple[np.ndarray, str]:
        session, runtime = _session(path, threads=threads or 0)
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
        return ArtifactFacts(
            input_size=spatial_size(dims), num_classes=out_dims[-1] if out_dims else None, precision=precision, ops=len(graph.node)
        )

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
