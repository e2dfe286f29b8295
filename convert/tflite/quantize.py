"""Keras model (from onnx2tf) → TFLite bytes at one precision, with TensorFlow's own converter.

Runs inside the conversion subprocess (see :mod:`convert.tflite.onnx2tf_runner`); TensorFlow is
imported lazily so that importing this module stays cheap.

* ``fp32``: float32 weights and activations.
* ``fp16``: float16 weights, dequantised once at load; float32 arithmetic.
* ``int8-weights``: dynamic range: int8 weights for the 1x1 convolutions and the classifier
  (nearly all of the weights), activations quantised on the fly. Convolutions with a spatial
  kernel (the stem and the depthwise ones, about 2% of the weights) keep float weights: their
  inputs are the image and the residual stream, whose per-tensor dynamic quantisation costs most
  of the accuracy, and XNNPACK has no hybrid depthwise kernel, so each would cut the graph into
  another partition.
* ``int8``: full integer, calibrated on real images; uint8 RGB pixels in (scale 1, zero point 0:
  camera pixels go in as they are), float32 logits out.

Full int8 keeps three kinds of small float islands (DEQUANTIZE → float op → QUANTIZE), the int8
ops that LiteRT's XNNPACK delegate leaves to LiteRT's own kernels (measured on this build): the
GroupNorm's ``rsqrt(var + eps)`` (the int8 RSQRT, and the int8 ADD of eps in front of it), the
attention SOFTMAX, and the standalone RELU before each SHSA projection (ReLUs fused into a
convolution are fine). Every other op is int8, and XNNPACK then takes the whole graph as one
partition; the straightforward full-int8 graph is cut into one partition per island (28 for S1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8-weights", "int8")

FLOAT_ISLAND_OPS: tuple[str, ...] = ("RSQRT", "SOFTMAX", "RELU")
"""Op types kept in float32 inside the full-integer graph (see the module docstring)."""

PIXEL_MIN, PIXEL_MAX = 0, 255

Progress = Callable[[int, int], None]


def concrete_function(model: Any, *, output_name: str = "logits") -> Any:
    """``model`` (onnx2tf's Keras model) as one traced function with a named output.

    Converting from the function rather than the Keras model skips TensorFlow's internal
    re-save of the Keras model, which serialises every layer's config (with its constants) on
    each conversion: 1-2 s instead of 30-40 s per precision for S1.
    """
    import tensorflow as tf

    (spec,) = [tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in model.inputs]
    return tf.function(lambda pixels: {output_name: model(pixels)}).get_concrete_function(spec)


def convert(
    function: Any,
    precision: str,
    *,
    calib_pixels: np.ndarray | None = None,
    on_image: Progress | None = None,
    float_model: bytes | None = None,
) -> bytes:
    """TFLite flatbuffer of ``function`` (see :func:`concrete_function`) at ``precision``.

    ``float_model``, the fp32 conversion of the same function, saves converting it again for
    ``int8-weights``.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops: they would not load in LiteRT
    if precision == "fp32":
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
        return converter.convert()
    if precision == "int8-weights":
        hybrid = converter.convert()
        return keep_float_weights(hybrid, float_model or convert(function, "fp32"))
    if precision != "int8":
        raise ValueError(f"unknown TFLite precision {precision!r}")
    if calib_pixels is None or not len(calib_pixels):
        raise ValueError("full-integer quantisation needs calibration images")
    return _full_integer(converter, calib_pixels, on_image)


def _full_integer(converter: Any, pixels: np.ndarray, on_image: Progress | None) -> bytes:
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize  # what tf.lite.experimental.QuantizationDebugger uses

    converter.representative_dataset = lambda: representative_dataset(pixels, on_image)
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    return mlir_quantize(
        calibrated,
        input_data_type=tf.uint8,
        output_data_type=tf.float32,
        denylisted_ops=list(FLOAT_ISLAND_OPS),
        denylisted_nodes=eps_adds(calibrated),
    )


def representative_dataset(pixels: np.ndarray, on_image: Progress | None) -> Iterator[list[np.ndarray]]:
    """Calibration images, one at a time, the first with one black and one white pixel.

    The input tensor's range comes from calibration: photos that never reach 0 or 255 would give the
    uint8 input a scale other than 1 and clip bright camera pixels. Two pixels of one image pin the
    range to the full 0-255 without moving any other activation range measurably.
    """
    total = len(pixels)
    for i in range(total):
        image = pixels[i : i + 1].astype(np.float32)
        if i == 0:
            image[0, 0, 0, :] = PIXEL_MIN
            image[0, 0, 1, :] = PIXEL_MAX
        yield [image]
        if on_image is not None:
            on_image(i + 1, total)


def eps_adds(calibrated: bytes) -> list[str]:
    """Names of the ADD ops feeding an RSQRT (``var + eps``), kept in float with the RSQRT."""
    from ai_edge_litert import schema_py_generated as schema

    from convert.tflite.graphinfo import op_name_table

    model = schema.Model.GetRootAs(calibrated, 0)
    names = op_name_table(model)
    graph = model.Subgraphs(0)
    producers: dict[int, Any] = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        for j in range(op.OutputsLength()):
            producers[op.Outputs(j)] = op
    found = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if names[op.OpcodeIndex()] != "RSQRT":
            continue
        source = producers.get(op.Inputs(0))
        if source is not None and names[source.OpcodeIndex()] == "ADD":
            found.append(graph.Tensors(source.Outputs(0)).Name().decode())
    return found


def keep_float_weights(hybrid: bytes, float_model: bytes) -> bytes:
    """``hybrid`` with the float weights of ``float_model`` back in every spatial-kernel convolution.

    Both graphs come from one Keras model, so ops are matched by their output tensor's name.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from convert.tflite.graphinfo import op_name_table

    source = schema.Model.GetRootAs(float_model, 0)
    source_graph, source_names = source.Subgraphs(0), op_name_table(source)
    float_filters = {}
    for i in range(source_graph.OperatorsLength()):
        op = source_graph.Operators(i)
        if source_names[op.OpcodeIndex()] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            name = source_graph.Tensors(op.Outputs(0)).Name()
            weights = source_graph.Tensors(op.Inputs(1))
            float_filters[name] = source.Buffers(weights.Buffer()).DataAsNumpy().copy()

    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAs(hybrid, 0))
    names = [code_name(code) for code in tree.operatorCodes]
    graph = tree.subgraphs[0]
    for op in graph.operators:
        if names[op.opcodeIndex] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        weights = graph.tensors[op.inputs[1]]
        _, kh, kw, _ = weights.shape
        output_name = graph.tensors[op.outputs[0]].name
        if weights.type != schema.TensorType.INT8 or kh * kw == 1 or output_name not in float_filters:
            continue
        tree.buffers[weights.buffer].data = None  # the int8 copy is dropped, not left as dead bytes
        buffer = schema.BufferT()
        buffer.data = float_filters[output_name]
        tree.buffers.append(buffer)
        weights.buffer = len(tree.buffers) - 1
        weights.type = schema.TensorType.FLOAT32
        weights.quantization = None
    builder = flatbuffers.Builder(len(hybrid) * 2)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def code_name(code: Any) -> str:
    from ai_edge_litert import schema_py_generated as schema

    number = max(code.builtinCode, code.deprecatedBuiltinCode)
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}.get(number, str(number))
