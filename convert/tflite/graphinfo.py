"""What a ``.tflite`` graph holds (op counts, input/output tensors) and how XNNPACK partitions it.

Op counts are read from the flatbuffer with LiteRT's generated schema (no TensorFlow needed).
Partitions need a live interpreter, which can abort on a malformed model, so they are read in a
subprocess: after delegation every XNNPACK partition is one ``DELEGATE`` node in the interpreter's
node list (this LiteRT build does not print its "Replacing N out of M node(s) ... yielding K
partitions" line). An op left outside the partitions runs on LiteRT's own kernels, and each
partition boundary costs a hand-over between the two.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convert.errors import ConvertError, RuntimeCrash
from convert.io.child import ChildFailure, run_isolated

PARTITION_TIMEOUT_S = 300.0


def op_name_table(model: Any) -> list[str]:
    """Builtin op name of every operator code of a ``schema.Model`` (custom ops by their name)."""
    from ai_edge_litert import schema_py_generated as schema

    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        names.append(custom.decode() if number == schema.BuiltinOperator.CUSTOM and custom else builtin.get(number, str(number)))
    return names


def _model(source: Path | bytes) -> Any:
    from ai_edge_litert import schema_py_generated as schema

    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise ConvertError("not a TFLite flatbuffer (no TFL3 identifier)")
    return schema.Model.GetRootAs(data, 0)


def op_counts(source: Path | bytes) -> dict[str, int]:
    """How many ops of each type the main subgraph holds, e.g. ``{"CONV_2D": 72, ...}``."""
    model = _model(source)
    names = op_name_table(model)
    graph = model.Subgraphs(0)
    counts = Counter(names[graph.Operators(i).OpcodeIndex()] for i in range(graph.OperatorsLength()))
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}


def io_tensors(source: Path | bytes) -> tuple[TensorInfo, TensorInfo]:
    """The (single) input and output tensor of the main subgraph."""
    from ai_edge_litert import schema_py_generated as schema

    model = _model(source)
    graph = model.Subgraphs(0)
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}

    def info(index: int) -> TensorInfo:
        tensor = graph.Tensors(index)
        q = tensor.Quantization()
        scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else 0.0
        zero = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        return TensorInfo((tensor.Name() or b"").decode(), shape, types.get(tensor.Type(), "?"), scale, zero)

    return info(graph.Inputs(0)), info(graph.Outputs(0))


@dataclass(frozen=True)
class Delegation:
    """How the XNNPACK delegate took a graph: its partitions, and the graph's op count."""

    partitions: int
    nodes: int
    runtime: str

    def as_dict(self) -> dict[str, Any]:
        return {"xnnpack_partitions": self.partitions}


def delegation(path: Path, *, timeout_s: float = PARTITION_TIMEOUT_S) -> Delegation:
    """XNNPACK partitions of ``path``, read in a child process (a native abort becomes :class:`RuntimeCrash`)."""
    name = Path(path).name
    try:
        found = run_isolated("convert.tflite.graphinfo:read_delegation", args={"path": Path(path)}, timeout_s=timeout_s)
    except ChildFailure as exc:
        detail = f"LiteRT could not load the model: {exc.error}" if exc.error else exc.describe("LiteRT", "while delegating the model")
        raise RuntimeCrash(f"{name}: {detail}") from None
    return Delegation(**found)


def read_delegation(*, path: str) -> dict[str, Any]:
    """In the child: load the graph with XNNPACK and count the partitions it made."""
    from convert.tflite.runtime import interpreter

    it, runtime = interpreter(Path(path), threads=1)
    nodes = it._get_ops_details()
    partitions = sum(1 for node in nodes if node["op_name"] == "DELEGATE")
    return {"partitions": partitions, "nodes": len(nodes) - partitions, "runtime": runtime}
