"""The TFLite half of accuracy-aware int8 (:mod:`convert.int8.engine` decides): graph, quantiser, runs.

Runs inside the conversion subprocess (see :mod:`convert.tflite.onnx2tf_runner`), on the same
converter, calibration images and quantiser (``mlir_quantize``) as :mod:`convert.tflite.quantize`:
calibrate once (TensorFlow's calibrator records each tensor's min/max), run the calibrated float model
over the calibration images to sample every activation and re-set the ranges by the calibration method
(:mod:`convert.int8.ranges`); each op's own error comes from ``tf.lite.experimental.QuantizationDebugger``
(NumericVerify: the op's int8 output against its float op on the same inputs). Ops kept float go to the
quantiser's ``denylisted_nodes`` (each becomes a DEQUANTIZE → float op → QUANTIZE island, which XNNPACK
runs inside the same partition).

Ops are named by their output tensor, as the quantiser's denylist takes them, shortened to the
first fused location without the Keras model prefix (``tf.math.add_7/Add``): see :func:`op_table`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from convert.int8.engine import Int8Options, QuantOp, quantise_int8
from convert.int8.ranges import RangeObserver
from convert.int8.report import ALONE_IMAGES, Int8Report, LayerError, Quality, SqnrSum, quality, sqnr_db
from convert.tflite.quantize import FLOAT_ISLAND_OPS, eps_adds, representative_dataset

MAC_OPS: tuple[str, ...] = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL")
_MODEL_PREFIX = re.compile(r"^model(_\d+)?/")
CLASSIFIER = "logits"
"""User-facing name of the op that computes the logits."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TFLiteOp:
    """One op of the graph: its user-facing name, the full output tensor name, type and MACs."""

    name: str
    tensor: str
    op_type: str
    macs: int
    output_dtype: str
    pointwise: bool = False
    """A 1x1 convolution or the classifier: it has a dynamic-range kernel when left float (:func:`hybridize`)."""


# ------------------------------------------------------------------------------------ graph


def op_table(model: bytes) -> list[TFLiteOp]:
    """Every op of the main subgraph with a stable, user-facing name (what ``keep_float`` takes)."""
    from ai_edge_litert import schema_py_generated as schema

    from convert.tflite.graphinfo import op_name_table

    root = schema.Model.GetRootAs(model, 0)
    names, graph = op_name_table(root), root.Subgraphs(0)
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        out = graph.Tensors(op.Outputs(0))
        tensor = out.Name().decode()
        op_type = names[op.OpcodeIndex()]
        pointwise = op_type == "FULLY_CONNECTED" or (
            op_type == "CONV_2D" and tuple(graph.Tensors(op.Inputs(1)).ShapeAsNumpy()[1:3]) == (1, 1)
        )
        ops.append(TFLiteOp(short_name(tensor), tensor, op_type, _macs(graph, op, op_type), types.get(out.Type(), "?"), pointwise))
    # The classifier is "logits" whatever the converter called its tensor (Identity, Identity1 in
    # int8, logits once the export names the output), so names agree across an export's artifacts.
    produced = {graph.Operators(i).Outputs(0): i for i in range(graph.OperatorsLength())}
    last = produced.get(graph.Outputs(0))
    if last is not None and ops[last].op_type == "DEQUANTIZE":
        ops[last] = replace(ops[last], name=f"{CLASSIFIER}/dequantize")
        last = produced.get(graph.Operators(last).Inputs(0))
    if last is not None:
        ops[last] = replace(ops[last], name=CLASSIFIER)
    seen: dict[str, int] = {}
    for op in ops:
        seen[op.name] = seen.get(op.name, 0) + 1
    return [op if seen[op.name] == 1 else replace(op, name=op.tensor) for op in ops]


def short_name(tensor: str) -> str:
    """``model_12/tf.nn.relu_3/Relu;model_12/tf.math.add_5/Add;...`` → ``tf.nn.relu_3/Relu``."""
    return _MODEL_PREFIX.sub("", tensor.split(";")[0])


def _macs(graph: Any, op: Any, op_type: str) -> int:
    if op_type not in MAC_OPS:
        return 0
    out = int(np.prod(graph.Tensors(op.Outputs(0)).ShapeAsNumpy()))
    weights = graph.Tensors(op.Inputs(1)).ShapeAsNumpy()
    if op_type == "CONV_2D":
        return out * int(np.prod(weights[1:]))
    if op_type == "DEPTHWISE_CONV_2D":
        return out * int(weights[1] * weights[2])
    if op_type == "FULLY_CONNECTED":
        return out * int(weights[-1])
    return out * int(graph.Tensors(op.Inputs(0)).ShapeAsNumpy()[-1])  # BATCH_MATMUL: the shared dimension


def float_op_names(model: bytes) -> list[str]:
    """Names of the ops that compute in float32 in a (full-integer) model: its float islands."""
    return [op.name for op in op_table(model) if op.output_dtype == "float32" and op.op_type not in ("DEQUANTIZE",)]


def int8_mac_share(model: bytes) -> float:
    """Share of the graph's multiply-accumulates done in int8 arithmetic.

    Counts ops with an int8 input (static full-integer) and float ops with int8 weights (dynamic
    range: the activation is quantised per image, the products are int8): see :func:`hybridize`.
    """
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    integer = (schema.TensorType.INT8, schema.TensorType.UINT8)
    total = quantised = 0
    for i, op in enumerate(op_table(model)):
        if not op.macs:
            continue
        total += op.macs
        node = graph.Operators(i)
        if any(graph.Tensors(node.Inputs(k)).Type() in integer for k in range(min(2, node.InputsLength()))):
            quantised += op.macs
    return quantised / total if total else 0.0


def quantised_ops(model: bytes) -> list[TFLiteOp]:
    """Ops full int8 quantises, in graph order: the names ``keep_float`` accepts.

    ``model`` is any ``.tflite`` of the same export (fp32, calibrated, or int8: the names are the same).
    """
    islands = set(eps_adds(model))
    return [op for op in op_table(model) if op.op_type not in (*FLOAT_ISLAND_OPS, "QUANTIZE", "DEQUANTIZE") and op.tensor not in islands]


# ----------------------------------------------------------------------- calibration, quantising


def calibrate(function: Any, pixels: np.ndarray, *, on_image: Progress | None = None) -> bytes:
    """The calibrated float model (min/max on every tensor), from the toolkit's own converter settings."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative_dataset(pixels, on_image)
    converter._experimental_calibrate_only = True
    return converter.convert()


def observe(calibrated: bytes, pixels: np.ndarray) -> tuple[RangeObserver, np.ndarray]:
    """A sample of every activation of the calibrated (float) model on the calibration images, and its logits."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    wanted = [(t["index"], t["name"]) for t in it.get_tensor_details() if t["dtype"] == np.float32 and t["index"] != inp["index"]]
    observer = RangeObserver()
    logits = []
    for (image,) in representative_dataset(pixels, None):
        it.set_tensor(inp["index"], image)
        it.invoke()
        logits.append(it.get_tensor(out["index"]).copy())
        for index, name in wanted:
            try:
                observer(name, it.get_tensor(index))
            except ValueError:  # constants folded away or never allocated
                continue
    return observer, np.concatenate(logits)


def with_ranges(calibrated: bytes, ranges: dict[str, tuple[float, float]]) -> bytes:
    """``calibrated`` with the recorded min/max of each named activation replaced (graph input untouched)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAs(calibrated, 0))
    graph = tree.subgraphs[0]
    inputs = set(graph.inputs)
    for index, tensor in enumerate(graph.tensors):
        q = tensor.quantization
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
        if index in inputs or q is None or q.min is None or len(q.min) != 1 or name not in ranges:
            continue
        low, high = ranges[name]
        q.min, q.max = [float(min(low, 0.0))], [float(max(high, 0.0))]
    builder = flatbuffers.Builder(len(calibrated) + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quantize(calibrated: bytes, *, keep_float: Sequence[str] = (), hybrid: bytes | None = None, debug: bool = False) -> bytes:
    """Full-integer model (uint8 pixels in, float logits out) with ``keep_float`` tensors' ops in float.

    With ``hybrid`` (the dynamic-range model of the same function), float 1x1 convolutions and the
    classifier take its int8 weights (see :func:`hybridize`). ``debug`` builds the NumericVerify
    model QuantizationDebugger reads (float input, one check per quantised op).
    """
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize

    io = {} if debug else {"input_data_type": tf.uint8, "output_data_type": tf.float32}
    model = mlir_quantize(
        calibrated,
        **io,
        enable_numeric_verify=debug,
        denylisted_ops=list(FLOAT_ISLAND_OPS),
        denylisted_nodes=[*eps_adds(calibrated), *keep_float],
    )
    return hybridize(model, hybrid) if hybrid is not None and keep_float else model


def hybridize(mixed: bytes, hybrid: bytes) -> bytes:
    """``mixed`` with the int8 weights of ``hybrid`` in every float op that has them there.

    A float island's 1x1 convolutions and classifier then run as LiteRT's dynamic-range kernels
    (int8 weights, activations quantised per image on the fly: the ``int8-weights`` precision, which
    keeps SHViT's accuracy) instead of in float32: about int8 speed, inside the same XNNPACK partition.
    Ops are matched by output tensor name (both models come from one function).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    source = schema.ModelT.InitFromObj(schema.Model.GetRootAs(hybrid, 0))
    source_graph, source_names = source.subgraphs[0], [_code(c) for c in source.operatorCodes]
    donors = {}
    for op in source_graph.operators:
        if source_names[op.opcodeIndex] in ("CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1:
            weights = source_graph.tensors[op.inputs[1]]
            if weights.type == schema.TensorType.INT8:
                donors[source_graph.tensors[op.outputs[0]].name] = (weights, source.buffers[weights.buffer].data, op.builtinOptions)
    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAs(mixed, 0))
    names = [_code(c) for c in tree.operatorCodes]
    graph = tree.subgraphs[0]
    for op in graph.operators:
        kind = names[op.opcodeIndex]
        if kind not in ("CONV_2D", "FULLY_CONNECTED") or len(op.inputs) < 2:
            continue
        weights = graph.tensors[op.inputs[1]]
        donor = donors.get(graph.tensors[op.outputs[0]].name)
        if donor is None or weights.type != schema.TensorType.FLOAT32 or graph.tensors[op.inputs[0]].type != schema.TensorType.FLOAT32:
            continue
        source_weights, data, options = donor
        tree.buffers[weights.buffer].data = None
        buffer = schema.BufferT()
        buffer.data = data
        tree.buffers.append(buffer)
        weights.buffer = len(tree.buffers) - 1
        weights.type = schema.TensorType.INT8
        weights.quantization = source_weights.quantization
        if kind == "FULLY_CONNECTED":
            op.builtinOptions.asymmetricQuantizeInputs = options.asymmetricQuantizeInputs
    builder = flatbuffers.Builder(len(mixed) * 2)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _code(code: Any) -> str:
    from convert.tflite.quantize import code_name

    return code_name(code)


def run_logits(model: bytes, pixels: np.ndarray) -> np.ndarray:
    """Logits of a full-integer (uint8 in) or float model on uint8 NHWC pixels, one image at a time."""
    from ai_edge_litert.interpreter import Interpreter

    from convert.tflite.runtime import logits_of

    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    return logits_of(it, pixels)


def layer_errors(calibrated: bytes, pixels: np.ndarray) -> dict[str, float]:
    """Own error (SQNR, dB) of every quantised op, by output tensor: ``QuantizationDebugger`` direct compare.

    Each NumericVerify op holds the op's dequantised int8 output and its float op's output on the
    same (dequantised) inputs, so the figure is the op's own error, not what it inherits.
    """
    import tensorflow as tf

    def sqnr(float_value: np.ndarray, quant_value: np.ndarray, scale: float, zero_point: int) -> float:
        return sqnr_db(float_value, (quant_value.astype(np.float32) - zero_point) * scale)

    options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={"sqnr_db": sqnr})
    debugger = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=quantize(calibrated, debug=True),
        debug_dataset=lambda: ([image.astype(np.float32)] for (image,) in representative_dataset(pixels, None)),
        debug_options=options,
    )
    debugger.run()
    by_short = {}
    for verify_name, metrics in debugger.layer_statistics.items():
        # "NumericVerify/<quantised tensor><digit>:<index>", as QuantizationDebugger itself parses it
        tensor = verify_name.rsplit(":", 1)[0].removeprefix("NumericVerify/")
        if tensor and tensor[-1].isdigit():
            tensor = tensor[:-1]
        by_short[short_name(tensor)] = float(metrics["sqnr_db"])
    return {op.tensor: by_short[short_name(op.tensor)] for op in op_table(calibrated) if short_name(op.tensor) in by_short}


# -------------------------------------------------------------------------------- the decision

REGION_OPS = 12
"""Consecutive quantised ops tried float together: about one SHViT block (TFLite's graph has more
elementwise ops per block than Core ML's program, hence more than :data:`convert.coreml.int8_mixed.REGION_OPS`)."""


class TFLiteBackend:
    """The TFLite half of :func:`convert.int8.engine.quantise_int8`: ``mlir_quantize`` on the calibrated model, LiteRT runs.

    Keys are output tensor names, as the quantiser's denylist takes them. With ``hybrid`` (the
    ``int8-weights`` model of the same function) float 1x1 convolutions keep int8 weights, so their MACs
    do not count as float.
    """

    label = "tflite"
    display = "TFLite"
    region_ops = REGION_OPS
    measure_alone = True
    trials_are_final = True

    def __init__(self, calibrated: bytes, pixels: np.ndarray, *, hybrid: bytes | None = None) -> None:
        self.calibrated, self.pixels, self.hybrid = calibrated, pixels, hybrid
        self.observer, self.reference = observe(calibrated, pixels)
        self.table = quantised_ops(calibrated)
        self.ranged = calibrated

    def ops(self) -> list[QuantOp]:
        return [
            QuantOp(op.name, op.tensor, op.op_type, op.macs, 0 if self.hybrid is not None and op.pointwise else op.macs)
            for op in self.table
        ]

    def use_ranges(self, method: str) -> None:
        self.ranged = self.calibrated if method == "minmax" else with_ranges(self.calibrated, self.observer.ranges(method))

    def own_errors(self) -> dict[str, float]:
        return layer_errors(self.ranged, self.pixels)

    def quantize(self, keep_float: Sequence[str]) -> bytes:
        return quantize(self.ranged, keep_float=keep_float, hybrid=self.hybrid)

    def quality(self, model: bytes) -> Quality:
        return quality(self.reference, run_logits(model, self.pixels))

    def trial(self, keep_float: Sequence[str]) -> Quality:
        return self.quality(self.quantize(keep_float))

    def alone_int8(self, key: str) -> Quality:
        model = quantize(self.ranged, keep_float=[op.tensor for op in self.table if op.tensor != key])
        return quality(self.reference[:ALONE_IMAGES], run_logits(model, self.pixels[:ALONE_IMAGES]))

    def int8_mac_share(self, model: bytes, kept: Sequence[str]) -> float:
        return int8_mac_share(model)


def convert_int8(
    function: Any,
    pixels: np.ndarray,
    *,
    options: Int8Options | None = None,
    hybrid: bytes | None = None,
    on_image: Progress | None = None,
) -> tuple[bytes, Int8Report]:
    """Full-integer TFLite bytes of ``function`` by ``options`` (default: auto), with the per-op report.

    ``mode="full"`` with the ``minmax`` method and no ``keep_float`` reproduces
    :func:`convert.tflite.quantize.convert`'s ``int8`` graph exactly. ``hybrid`` (the ``int8-weights``
    model of ``function``) gives float islands int8 weights.
    """
    backend = TFLiteBackend(calibrate(function, pixels, on_image=on_image), pixels, hybrid=hybrid)
    return quantise_int8(backend, options or Int8Options())


# ---------------------------------------------------------------- per-layer check of artifacts


def per_layer_errors(quantised: bytes, float_model: bytes, pixels: np.ndarray) -> list[LayerError]:
    """SQNR of every op output of ``quantised`` against the same op of ``float_model`` on ``pixels``, in graph order.

    For ``shvit-check --per-layer``. Both come from one toolkit export path (the float one may be a
    separate conversion of the same model): ops are matched by their user-facing name
    (:func:`op_table`), so the table shows where along the depth the error grows. One image at a
    time, so memory stays at one image's activations.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from convert.tflite.runtime import to_input

    Outputs = list[tuple[TFLiteOp, int, tuple[float, int]]]

    def outputs(model: bytes) -> tuple[Any, Any, Outputs]:
        # LiteRT's own kernels, no XNNPACK: every intermediate tensor is kept, and LiteRT neither warns nor logs about it.
        it = Interpreter(
            model_content=model,
            experimental_preserve_all_tensors=True,
            num_threads=1,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        it.allocate_tensors()
        graph = _graph(model)
        quantization = {t["index"]: t["quantization"] for t in it.get_tensor_details()}
        ops = [
            (op, graph.Operators(i).Outputs(0), quantization.get(graph.Operators(i).Outputs(0), (0.0, 0)))
            for i, op in enumerate(op_table(model))
            if op.op_type not in ("QUANTIZE", "DEQUANTIZE")
        ]
        return it, it.get_input_details()[0], ops

    def values(it: Any, inp: dict[str, Any], ops: Outputs, image: np.ndarray) -> dict[str, np.ndarray]:
        it.set_tensor(inp["index"], to_input(image[None], inp))
        it.invoke()
        found = {}
        for op, index, (scale, zero) in ops:
            try:
                value = it.get_tensor(index)
            except ValueError:
                continue
            if value.dtype in (np.int8, np.uint8) and scale:
                value = (value.astype(np.float32) - zero) * scale
            elif value.dtype != np.float32:
                continue
            found[op.name] = value
        return found

    q_it, q_in, q_ops = outputs(quantised)
    f_it, f_in, f_ops = outputs(float_model)
    sums: dict[str, SqnrSum] = {}
    for image in pixels:
        reference = values(f_it, f_in, f_ops, image)
        for name, value in values(q_it, q_in, q_ops, image).items():
            if name in reference and reference[name].shape == value.shape:
                sums.setdefault(name, SqnrSum()).add(reference[name], value)
    return [LayerError(op.name, op.op_type, op.output_dtype, sums[op.name].db) for op, _, _ in q_ops if op.name in sums]


def _graph(model: bytes) -> Any:
    from ai_edge_litert import schema_py_generated as schema

    return schema.Model.GetRootAs(model, 0).Subgraphs(0)
