"""Which ops of a ``.tflite`` graph the LiteRT GPU delegate would leave on the CPU, read offline.

The analyzers shipped with TensorFlow 2.19–2.21 and LiteRT 2.1–2.3 (``tf.lite.experimental.Analyzer``
with ``gpu_compatibility=True``) flag nothing: TOPK_V2, Flex and unknown custom ops all pass. So the
delegate's rules are applied here, in our own Python, after LiteRT's sources:

* ``tflite/tools/versioning/gpu_compatibility.cc`` (``CheckGpuDelegateCompatibility``): per builtin
  op, the runtime/constant input and output counts, constant int32 axes, positive strides, dilations
  and kernels, fused activations (no SIGN_BIT), broadcast shapes, option flags and dtype pairs;
  the four custom ops the delegate has (Convolution2DTransposeBias, MaxPoolingWithArgmax2D,
  MaxUnpooling2D, Resampler); every other custom op, Flex ops included, is not supported;
* ``tflite/delegates/gpu/common/model_builder.cc``: which builtin ops have a GPU kernel at all and
  the newest op version each takes (``NewOperationParser``, ``CheckMaxSupportedOpVersion``), and the
  check every op's tensors pass (``IsAllAllowedTensors``): rank ≤ 4; runtime tensors float32 or
  float16, int8/uint8 too (quantised models; the delegate's default), bool/int32 only where an op takes them.

As the delegate partitions an fp16 model (``FP16GraphPartitionHelper``), a DEQUANTIZE of a constant
float16 tensor is folded: its output counts as a constant input of its consumers and the DEQUANTIZE
itself is delegated. Only the main subgraph is checked (the one the delegate takes). Pure Python over
LiteRT's flatbuffer schema: no TensorFlow, no child process.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convert.errors import ConvertError

RULES = "shvit-mobile port of LiteRT gpu_compatibility.cc"

F32, F16, I32, U8, BOOL, I16, I8 = 0, 1, 2, 3, 6, 7, 9  # schema TensorType
NOTYPE = -1  # an omitted optional input
SIGN_BIT = 5  # schema ActivationFunctionType
CUSTOM = 32  # schema BuiltinOperator


@dataclass(frozen=True)
class GpuCompatibility:
    """What the GPU delegate would leave on the CPU: ``incompatible`` of ``total_ops`` ops.

    ``ops`` are the distinct names of the incompatible ops in graph order, ``reasons`` the distinct
    ``NAME: reason`` lines, ``analyzer`` which rules produced them, and ``folded_dequantize`` how many
    fp16 DEQUANTIZE ops were taken as folded into their consumers (delegated, their output constant).
    """

    incompatible: int
    ops: tuple[str, ...]
    total_ops: int
    reasons: tuple[str, ...] = ()
    analyzer: str = RULES
    folded_dequantize: int = 0

    @property
    def fully_compatible(self) -> bool:
        return self.incompatible == 0

    def summary(self) -> str:
        """``all N ops supported`` or ``K of N ops not supported: A, B``."""
        if self.fully_compatible:
            return f"all {self.total_ops} ops supported"
        return f"{self.incompatible} of {self.total_ops} ops not supported: {', '.join(self.ops)}"

    def line(self) -> str:
        """``GPU delegate: K of N ops not supported (A, B)``, one line per artifact in reports."""
        return f"GPU delegate: {self.incompatible} of {self.total_ops} ops not supported" + (
            f" ({', '.join(self.ops)})" if self.ops else ""
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": True,
            "incompatible": self.incompatible,
            "total_ops": self.total_ops,
            "ops": list(self.ops),
            "reasons": list(self.reasons),
            "analyzer": self.analyzer,
            "folded_dequantize": self.folded_dequantize,
        }


# ------------------------------------------------------------------------------------------ the graph


@dataclass(frozen=True)
class Tensor:
    type: int
    dims: tuple[int, ...]
    const: bool
    variable: bool = False


ABSENT = Tensor(NOTYPE, (), False)


@dataclass(frozen=True)
class Node:
    """One operator as the rules see it (``feeds``: name and output dtype of each consumer of output 0)."""

    name: str
    version: int
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    options: Any = None
    custom_options: bytes = b""
    feeds: tuple[tuple[str, int], ...] = ()

    def opt(self, field: str) -> Any:
        """A builtin option; 0 where the op has no options table (the interpreter's zeroed params)."""
        return getattr(self.options, field, 0) if self.options is not None else 0

    def input(self, index: int) -> Tensor:
        return self.inputs[index] if index < len(self.inputs) else ABSENT


Rule = Callable[[Node], "str | None"]


def _runtime(node: Node) -> int:
    return sum(t.type != NOTYPE and not t.const for t in node.inputs)


def _consts(node: Node) -> int:
    return sum(t.const for t in node.inputs)


@functools.cache
def _type_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


def _tname(t: int) -> str:
    return _type_names().get(t, str(t))


# ------------------------------------------------------------------------------------- rule builders


def io(runtime: int, outputs: int, consts: int | None = None) -> Rule:
    """Exactly ``runtime`` non-constant inputs (and ``consts`` constant ones, when given) and ``outputs`` outputs."""

    def rule(node: Node) -> str | None:
        if consts is not None and _consts(node) != consts:
            return f"expects {consts} constant input(s), node has {_consts(node)}"
        if _runtime(node) != runtime:
            return f"expects {runtime} runtime input(s), node has {_runtime(node)}"
        if len(node.outputs) != outputs:
            return f"expects {outputs} output(s), node has {len(node.outputs)}"
        return None

    return rule


def every(*rules: Rule) -> Rule:
    def rule(node: Node) -> str | None:
        return next((reason for r in rules if (reason := r(node))), None)

    return rule


def either(*rules: Rule, reason: str) -> Rule:
    return lambda node: None if any(r(node) is None for r in rules) else reason


def inputs(count: int, *, at_least: bool = False) -> Rule:
    def rule(node: Node) -> str | None:
        n = len(node.inputs)
        if n < count if at_least else n != count:
            return f"takes {'at least ' if at_least else ''}{count} inputs, node has {n}"
        return None

    return rule


def positive(*fields: str, what: str) -> Rule:
    def rule(node: Node) -> str | None:
        values = [node.opt(f) for f in fields]
        return f"{what} must be positive, node has {values}" if min(values) <= 0 else None

    return rule


def activation(node: Node) -> str | None:
    return "fused activation SIGN_BIT is not supported" if node.opt("fusedActivationFunction") == SIGN_BIT else None


def const_int32_axes(index: int) -> Rule:
    def rule(node: Node) -> str | None:
        axes = node.input(index)
        if not axes.const:
            return "takes constant axes only"
        return None if axes.type == I32 else f"axes must be int32, node has {_tname(axes.type)}"

    return rule


def input_rank(*ranks: int) -> Rule:
    def rule(node: Node) -> str | None:
        rank = len(node.input(0).dims)
        return None if rank in ranks else f"input rank must be {' or '.join(map(str, ranks))}, node has {rank}"

    return rule


def conv_io(node: Node) -> str | None:
    if (n := _runtime(node)) > 2:
        return f"expects 1 or 2 runtime inputs, node has {n}"
    if len(node.outputs) != 1:
        return f"expects 1 output, node has {len(node.outputs)}"
    return "has no weights input" if n == 1 and len(node.inputs) < 2 else None


STRIDES = positive("strideH", "strideW", what="strides")
CONV = every(conv_io, STRIDES, positive("dilationHFactor", "dilationWFactor", what="dilations"), activation)
POOL = every(io(1, 1), positive("filterHeight", "filterWidth", what="kernel"), STRIDES, activation)
ONE_ARG = io(1, 1, consts=0)
TWO_ARGS = either(io(2, 1, consts=0), io(1, 1, consts=1), reason="takes 1 or 2 runtime inputs (at most one constant) and 1 output")


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(x == y or 1 in (x, y) for x, y in zip(reversed(a), reversed(b)))


def broadcast(node: Node) -> str | None:
    """Inputs of different rank (both above 1) must broadcast (offline checks assume enhanced broadcast)."""
    a, b = node.input(0).dims, node.input(1).dims
    if len(a) > 1 and len(b) > 1 and len(a) != len(b) and not _broadcastable(a, b):
        return f"cannot broadcast {list(a)} with {list(b)}"
    return None


def mul(node: Node) -> str | None:
    if len(node.inputs) != 2:
        return "takes two inputs"
    return (broadcast(node) if len(node.input(0).dims) != len(node.input(1).dims) else None) or activation(node)


def depthwise(node: Node) -> str | None:
    if reason := CONV(node):
        return reason
    x, w, out = node.input(0), node.input(1), node.outputs[0]
    if (len(x.dims), len(w.dims), len(out.dims)) != (4, 4, 4):
        return "input, filter and output must be rank 4"
    if x.dims[0] != out.dims[0]:
        return "input and output batch differ"
    if w.dims[3] != out.dims[3] or out.dims[3] != x.dims[3] * node.opt("depthMultiplier"):
        return "filter/output channels do not match input channels × depth multiplier"
    bias = node.input(2)
    if bias.type != NOTYPE and _elements(bias.dims) != out.dims[3]:
        return "bias size differs from output channels"
    return None


def _elements(dims: tuple[int, ...]) -> int:
    count = 1
    for d in dims:
        count *= d
    return count


def cast(node: Node) -> str | None:
    if reason := io(1, 1)(node):
        return reason
    src, dst = node.input(0).type, node.outputs[0].type
    if (src == BOOL and dst in (F16, F32)) or (src in (F16, F32) and dst == BOOL) or (src in (F32, I32) and dst in (F32, I32)):
        return None
    return f"casts {_tname(src)} to {_tname(dst)}"


def batch_matmul(node: Node) -> str | None:
    return None if (len(node.inputs), len(node.outputs)) == (2, 1) else "takes 2 inputs and 1 output"


def cumsum(node: Node) -> str | None:
    if len(node.inputs) != 2:
        return "takes 2 inputs"
    x, axis = node.inputs
    if x.type not in (F16, F32) or node.outputs[0].type != x.type or axis.type != I32 or not axis.const:
        return "input/output must be float and the axis a constant int32"
    return None


def block_size(node: Node) -> str | None:
    return None if node.opt("blockSize") > 1 else f"block size {node.opt('blockSize')} (must be > 1)"


def dequantize(node: Node) -> str | None:
    if len(node.inputs) != 1 or len(node.outputs) != 1:
        return "takes 1 input and 1 output"
    return "int16 input is not supported" if node.input(0).type == I16 else None


def fully_connected(node: Node) -> str | None:
    if node.opt("weightsFormat") != 0:
        return "shuffled weights format is not supported"
    if _runtime(node) > 2:
        return "takes at most 2 runtime inputs"
    if node.opt("keepNumDims") and len(node.input(0).dims) != len(node.outputs[0].dims):
        return "keep_num_dims with input and output of different rank"
    return None


def gather(node: Node) -> str | None:
    if reason := TWO_ARGS(node):
        return reason
    indices = node.input(1)
    if len(indices.dims) != 1:
        return "indices must be 1-D"
    return None if indices.type == I32 else "indices must be int32"


def lstm(node: Node) -> str | None:
    tanh = 4
    if node.opt("kernelType") == 0:  # full kernel
        if len(node.inputs) not in (20, 24) or len(node.outputs) != 1:
            return "full kernel takes 20 or 24 inputs and 1 output"
        return None if node.opt("fusedActivationFunction") == tanh else "only tanh (or sigmoid) activation"
    if reason := io(3, 4, consts=2)(node):
        return reason
    if node.opt("fusedActivationFunction") != tanh:
        return "basic kernel takes tanh activation only"
    return "cell_clip/proj_clip are not supported" if node.opt("cellClip") or node.opt("projClip") else None


def one_hot(node: Node) -> str | None:
    error = "indices must be int32, on/off values constant float scalars, axis -1 or the last"
    if len(node.inputs) != 4 or node.input(0).type != I32:
        return error
    dims = node.input(0).dims
    if node.opt("axis") != -1 and (not dims or node.opt("axis") != dims[-1]):
        return error
    if any(d != 1 for i, d in enumerate(dims[:-1]) if not (len(dims) > 3 and i == 0)):
        return "only batch and channels may be non-singleton"
    on, off = node.input(2), node.input(3)
    if any(t.type != F32 or not t.const or len(t.dims) > 1 or (t.dims and t.dims[0] > 1) for t in (on, off)):
        return error
    return None


def select(node: Node) -> str | None:
    if len(node.inputs) != 3 or len(node.outputs) != 1:
        return "takes 3 inputs and 1 output"
    error = "condition must be bool or float; if/else the output's shape, or constant scalars"
    if node.input(0).type not in (BOOL, F16, F32):
        return error
    out = node.outputs[0].dims
    for t in (node.input(1), node.input(2)):
        if t.dims and t.dims != out and (len(t.dims) > 1 or t.dims[0] > 1):
            return error
        if t.const and len(t.dims) == 2:
            return "2-D constant if/else tensors are not supported"
    return None


def softmax(node: Node) -> str | None:
    return None if node.opt("beta") == 1 else f"beta {node.opt('beta')} (only 1)"


def strided_slice(node: Node) -> str | None:
    for mask in ("ellipsisMask", "newAxisMask", "shrinkAxisMask"):
        if node.opt(mask):
            return f"{mask} is not supported"
    return inputs(4, at_least=True)(node) or input_rank(3, 4)(node)


def resize_bilinear(node: Node) -> str | None:
    if node.opt("alignCorners") and node.opt("halfPixelCenters"):
        return "align_corners together with half_pixel_centers"
    return io(1, 1)(node)


def pad(node: Node) -> str | None:
    if node.name == "MIRROR_PAD" and node.opt("mode") != 0:
        return "only REFLECT mirror padding"
    if reason := io(1, 1)(node):
        return reason
    dims = node.input(1).dims
    return None if len(dims) == 2 and dims[0] in (3, 4) and dims[1] == 2 else f"paddings must be 4×2 or 3×2, node has {list(dims)}"


def logical(node: Node) -> str | None:
    """model_builder.cc: a comparison's bool result must feed one CAST/SELECT that yields float."""
    if len(node.feeds) == 1 and node.feeds[0][0] in ("CAST", "SELECT", "SELECT_V2") and node.feeds[0][1] in (F16, F32):
        return TWO_ARGS(node)
    return "its bool result must feed exactly one CAST/SELECT to float"


def _custom_params(node: Node, count: int) -> tuple[int, ...] | None:
    """The leading ints of a custom op's C params struct (TfLitePoolParams, TfLiteTransposeConvParams)."""
    data = node.custom_options
    return struct.unpack_from(f"<{count}i", data) if len(data) >= 4 * count else None


def custom_pool(outputs: int, runtime: int) -> Rule:
    def rule(node: Node) -> str | None:
        params = _custom_params(node, 5)  # padding, stride w, stride h, filter w, filter h
        if params is None:
            return "no pooling parameters in its custom options"
        if min(params[1:]) <= 0:
            return f"kernel and strides must be positive, node has {list(params[1:])}"
        return io(runtime, outputs)(node)

    return rule


def transpose_conv_bias(node: Node) -> str | None:
    if len(node.inputs) < 2:
        return "has no weights input"
    params = _custom_params(node, 3)  # padding, stride w, stride h
    if params is None:
        return "no convolution parameters in its custom options"
    return None if min(params[1:]) > 0 else f"strides must be positive, node has {list(params[1:])}"


# ----------------------------------------------------------------------------------------- the table

# builtin op → (newest version the delegate's parser takes or None, rule or None). Ops not here have no
# GPU kernel ("Operation is not supported"): TOPK_V2, REVERSE_V2, GATHER_ND, ARG_MAX, SQUEEZE, ...
_ELEMENTWISE_1 = ("ABS", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT", "SIGN", "SIN", "SQRT", "SQUARE", "TANH")
_ELEMENTWISE_2 = ("DIV", "FLOOR_DIV", "FLOOR_MOD", "MAXIMUM", "MINIMUM", "POW", "SQUARED_DIFFERENCE", "SUB")
LOGICAL = ("EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "NOT_EQUAL")
OPS: dict[str, tuple[int | None, Rule | None]] = {
    **{name: (2, ONE_ARG) for name in _ELEMENTWISE_1},
    **{name: (2, every(TWO_ARGS, activation)) for name in _ELEMENTWISE_2},
    **{name: (2, logical) for name in LOGICAL},
    "LOGICAL_AND": (2, TWO_ARGS),
    "ADD": (2, every(inputs(2), broadcast)),
    "ADD_N": (2, inputs(2)),
    "MUL": (3, mul),
    "AVERAGE_POOL_2D": (2, POOL),
    "MAX_POOL_2D": (2, POOL),
    "BATCH_MATMUL": (None, batch_matmul),
    "CAST": (None, cast),
    "CONCATENATION": (2, None),
    "CONV_2D": (6, CONV),
    "CUMSUM": (1, cumsum),
    "DENSIFY": (1, io(0, 1)),
    "DEPTHWISE_CONV_2D": (6, depthwise),
    "DEPTH_TO_SPACE": (None, every(io(1, 1), block_size)),
    "DEQUANTIZE": (3, dequantize),
    "FULLY_CONNECTED": (9, fully_connected),
    "GATHER": (1, gather),
    "HARD_SWISH": (None, io(1, 1)),
    "LSTM": (4, lstm),
    "MEAN": (None, every(io(1, 1, consts=1), const_int32_axes(1))),
    **{name: (None, every(io(1, 1), const_int32_axes(1))) for name in ("REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "SUM")},
    "ONE_HOT": (1, one_hot),
    "PACK": (None, None),
    "UNPACK": (None, None),
    "PAD": (2, pad),
    "PADV2": (2, pad),
    "MIRROR_PAD": (2, pad),
    "QUANTIZE": (2, io(1, 1)),
    **{name: (2, None) for name in ("RELU", "RELU6", "RELU_0_TO_1", "RELU_N1_TO_1", "LEAKY_RELU")},
    "PRELU": (1, None),
    "RESHAPE": (1, io(1, 1)),
    "RESIZE_BILINEAR": (3, resize_bilinear),
    "RESIZE_NEAREST_NEIGHBOR": (3, io(1, 1)),
    "SELECT": (1, select),
    "SELECT_V2": (1, select),
    "SLICE": (2, every(inputs(3, at_least=True), input_rank(3, 4))),
    "SOFTMAX": (2, softmax),
    "SPACE_TO_DEPTH": (2, every(io(1, 1), block_size)),
    "SPLIT": (None, None),
    "SPLIT_V": (None, None),
    "STRIDED_SLICE": (4, strided_slice),
    "TILE": (None, io(1, 1)),
    "TRANSPOSE": (4, io(1, 1)),
    "TRANSPOSE_CONV": (3, every(conv_io, STRIDES)),
}
CUSTOM_OPS: dict[str, Rule] = {
    "Convolution2DTransposeBias": transpose_conv_bias,
    "MaxPoolingWithArgmax2D": custom_pool(outputs=2, runtime=1),
    "MaxUnpooling2D": custom_pool(outputs=1, runtime=2),
    "Resampler": io(2, 1),
}
_FLOATS_AND_QUANTISED = frozenset({F32, F16, I8, U8})


def tensor_problem(node: Node) -> str | None:
    """``IsAllAllowedTensors``: every tensor rank ≤ 4; runtime tensors of a dtype the op takes."""
    ins, outs = set(_FLOATS_AND_QUANTISED), set(_FLOATS_AND_QUANTISED)
    if node.name in LOGICAL:
        outs.add(BOOL)
    if node.name == "CAST":
        ins |= {BOOL, I32}
        outs |= {BOOL, I32}
    if node.name in ("ONE_HOT", "GATHER"):
        ins.add(I32)
    if node.name in ("SELECT", "SELECT_V2"):
        ins.add(BOOL)
    if node.name == "LOGICAL_AND":
        ins.add(BOOL)
        outs.add(BOOL)
    for kind, tensors, allowed in (("input", node.inputs, ins), ("output", node.outputs, outs)):
        for i, t in enumerate(tensors):
            if t.type == NOTYPE:
                continue
            if len(t.dims) >= 5:
                return f"{kind} {i} has rank {len(t.dims)} (the GPU delegate takes rank ≤ 4)"
            if not t.const and not t.variable and t.type not in allowed:
                return f"{kind} {i} is {_tname(t.type)} (runtime tensors must be float32/float16 or int8/uint8)"
    return None


def check_node(node: Node, *, custom: bool) -> str | None:
    """Why the GPU delegate would not take ``node`` (None: it would), in the delegate's order."""
    if custom:
        if node.name.startswith("Flex"):
            return "TensorFlow (Flex) op: runs only in the Flex delegate on the CPU"
        rule = CUSTOM_OPS.get(node.name)
        if rule is None:
            return "custom op with no GPU kernel"
    else:
        if node.name not in OPS:
            return "no GPU kernel for this op"
        newest, rule = OPS[node.name]
        if newest is not None and node.version > newest:
            return f"op version {node.version} (the GPU delegate takes up to {newest})"
    return (rule(node) if rule is not None else None) or tensor_problem(node)


# -------------------------------------------------------------------------------------- the checker


def gpu_compatibility(model: bytes | bytearray | str | Path) -> GpuCompatibility:
    """GPU delegate coverage of a TFLite flatbuffer (its bytes or its path)."""
    from ai_edge_litert import schema_py_generated as schema

    data = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise ConvertError("not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        tree = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        nodes, custom, folded = _nodes(tree, schema)
    except (IndexError, ValueError, TypeError, AttributeError, struct.error) as exc:
        raise ConvertError(f"cannot read the TFLite graph ({type(exc).__name__}: {exc})") from None
    flagged: dict[str, None] = {}
    reasons: dict[str, None] = {}
    incompatible = 0
    for node, is_custom, is_folded in zip(nodes, custom, folded):
        reason = None if is_folded else check_node(node, custom=is_custom)
        if reason:
            incompatible += 1
            flagged[node.name] = None
            reasons[f"{node.name}: {reason}"] = None
    return GpuCompatibility(incompatible, tuple(flagged), len(nodes), tuple(reasons), RULES, sum(folded))


def gpu_compatibility_of(path: Path) -> GpuCompatibility:
    """:func:`gpu_compatibility` of a ``.tflite`` file; a malformed file raises :class:`ConvertError` naming it."""
    try:
        return gpu_compatibility(Path(path))
    except ConvertError as exc:
        raise ConvertError(f"{Path(path).name}: {exc}") from None


def _nodes(model: Any, schema: Any) -> tuple[list[Node], list[bool], list[bool]]:
    """The main subgraph's operators as :class:`Node` s, which are custom, and which are folded fp16 DEQUANTIZEs."""
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = (model.subgraphs or [None])[0]
    if graph is None:
        return [], [], []
    buffers = model.buffers or []

    def is_const(t: Any) -> bool:
        buffer = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
        return buffer is not None and ((buffer.data is not None and len(buffer.data) > 0) or (buffer.offset or 0) > 1)

    tensors = graph.tensors or []
    ops = graph.operators or []
    codes = model.operatorCodes or []
    op_names, op_custom = [], []
    for op in ops:
        code = codes[op.opcodeIndex]
        number = max(code.builtinCode, code.deprecatedBuiltinCode)
        custom_code = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        op_custom.append(number == CUSTOM)
        op_names.append((custom_code or "CUSTOM") if number == CUSTOM else names.get(number, str(number)))
    folded = [
        name == "DEQUANTIZE"
        and len(ins := _ints(op.inputs)) == 1
        and ins[0] >= 0
        and len(_ints(op.outputs)) == 1
        and tensors[ins[0]].type == F16
        and is_const(tensors[ins[0]])
        for name, op in zip(op_names, ops)
    ]
    constant = {_ints(op.outputs)[0] for op, f in zip(ops, folded) if f}
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for index in _ints(op.inputs):
            consumers.setdefault(index, []).append(i)

    def spec(index: int) -> Tensor:
        if index < 0:
            return ABSENT
        t = tensors[index]
        return Tensor(int(t.type), tuple(_ints(t.shape)), index in constant or is_const(t), bool(t.isVariable))

    nodes = []
    for i, op in enumerate(ops):
        outs = _ints(op.outputs)
        feeds = (
            tuple(
                (op_names[j], int(tensors[_ints(ops[j].outputs)[0]].type) if _ints(ops[j].outputs) else NOTYPE)
                for j in consumers.get(outs[0], [])
            )
            if outs
            else ()
        )
        nodes.append(
            Node(
                op_names[i],
                int(codes[op.opcodeIndex].version or 1),
                tuple(spec(k) for k in _ints(op.inputs)),
                tuple(spec(k) for k in outs),
                op.builtinOptions,
                bytes(_ints(op.customOptions)),
                feeds,
            )
        )
    return nodes, op_custom, folded


def _ints(values: Any) -> list[int]:
    return [] if values is None or isinstance(values, int) else [int(v) for v in values]
