"""LiteRT interpreters as Android runs them, for parity and timing (inside their subprocesses).

The interpreter applies XNNPACK by default, as on Android. Pixels arrive as uint8 NHWC RGB:
float models take them as float32 0-255, integer models through their input quantisation
(scale 1 and zero point 0 for this toolkit's uint8 input, so the bytes go in unchanged).
Integer outputs are dequantised so every runtime returns float logits.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from convert.onnx.runtime import spatial_size
from convert.targets import ArtifactFacts, Loaded, RuntimeBase, Step


def interpreter(path: Path, *, threads: int | None = None) -> tuple[Any, str]:
    """An allocated LiteRT interpreter for ``path`` and a description of it."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    version = metadata.version("ai-edge-litert")
    return it, f"LiteRT {version} (XNNPACK, {threads or 'default'} thread{'s' if threads != 1 else ''})"


def to_input(pixels: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """uint8 NHWC pixels in the dtype and quantisation the model's input tensor takes."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return pixels.astype(np.float32)
    scale, zero = detail["quantization"]
    if dtype == np.uint8 and scale == 1.0 and zero == 0:
        return pixels.astype(np.uint8)
    info = np.iinfo(dtype)
    return np.clip(np.round(pixels / scale + zero), info.min, info.max).astype(dtype)


def from_output(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.dtype(detail["dtype"]) in (np.dtype(np.int8), np.dtype(np.uint8)):
        scale, zero = detail["quantization"]
        return (values.astype(np.float32) - zero) * scale
    return values.astype(np.float32)


def logits_of(it: Any, pixels: np.ndarray) -> np.ndarray:
    """Float logits of an allocated interpreter on uint8 NHWC ``pixels``, one image at a time (batch-1 graphs)."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    logits = []
    for image in pixels:
        it.set_tensor(inp["index"], to_input(image[None], inp))
        it.invoke()
        logits.append(from_output(it.get_tensor(out["index"]), out))
    return np.concatenate(logits)


class TFLiteRuntime(RuntimeBase):
    def open(self, path: Path, *, threads: int | None) -> Loaded:
        it, runtime = interpreter(path, threads=threads)
        inp = it.get_input_details()[0]
        expected = tuple(int(d) for d in inp["shape"])

        def predict(pixels: np.ndarray) -> np.ndarray:
            if len(expected) != 4 or expected[1:] != pixels.shape[1:]:
                raise ValueError(
                    f"model input {inp['name']} has shape {list(expected)}, images are {list(pixels.shape)}: wrong variant or input size?"
                )
            return logits_of(it, pixels)

        def prepare(pixels: np.ndarray) -> Step:
            if list(expected[1:]) != list(pixels.shape[1:]):  # an NCHW graph (a plain conversion may keep one)
                pixels = pixels.transpose(0, 3, 1, 2)
            x = np.ascontiguousarray(to_input(pixels, inp))

            def step() -> object:
                it.set_tensor(inp["index"], x)
                it.invoke()
                return None

            return step

        return Loaded(predict, runtime, prepare)

    def inspect(self, path: Path) -> ArtifactFacts:
        from ai_edge_litert import schema_py_generated as tfl

        buf = bytearray(path.read_bytes())
        if not tfl.Model.ModelBufferHasIdentifier(buf, 0):
            raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
        graph = tfl.Model.GetRootAs(buf, 0).Subgraphs(0)
        inp, out = graph.Tensors(graph.Inputs(0)), graph.Tensors(graph.Outputs(0))
        types = {graph.Tensors(i).Type() for i in range(graph.TensorsLength())}
        t = tfl.TensorType
        if inp.Type() in (t.UINT8, t.INT8):
            precision = "int8"
        elif t.FLOAT16 in types:
            precision = "fp16"
        elif types & {t.INT8, t.UINT8}:
            precision = "int8-weights"
        else:
            precision = "fp32"
        out_shape = [int(d) for d in out.ShapeAsNumpy()] if out.ShapeLength() else []
        return ArtifactFacts(
            input_size=spatial_size([int(d) for d in inp.ShapeAsNumpy()]),
            num_classes=out_shape[-1] if out_shape else None,
            precision=precision,
            ops=graph.OperatorsLength(),
        )


RUNTIME = TFLiteRuntime()
