"""What an exported file is, read from the file itself and its JSON sidecar, without running it.

The checker needs the target, the precision (its tolerance) and the input size and class count
(to name a wrong-variant artifact in one line instead of failing on numbers). The graph is read in
a subprocess: coremltools pulls in TensorFlow and prints start-up noise, and a malformed file must
never take the checker down.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convert.artifacts import sha256_path

TARGET_OF_SUFFIX: dict[str, str] = {".onnx": "onnx", ".tflite": "tflite", ".mlpackage": "coreml"}
INSPECT_TIMEOUT_S = 300.0


@dataclass
class ArtifactInfo:
    """Facts about one artifact; ``None`` where the file does not say."""

    path: Path
    target: str
    size_bytes: int
    sidecar: dict[str, Any] | None = None
    input_size: int | None = None
    num_classes: int | None = None
    graph_precision: str | None = None
    ops: int | None = None  # ops run per prediction (Core ML: consts and constexpr weight decompression excluded)
    unreadable: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def precision(self) -> tuple[str | None, str]:
        """Precision and where it came from (said in the report: an inferred precision may be wrong)."""
        declared = (self.sidecar or {}).get("config", {}).get("precision")
        if declared:
            return str(declared), "sidecar"
        if self.graph_precision:
            return self.graph_precision, "inferred from the graph (no sidecar)"
        return None, "unknown"

    def sidecar_config(self, key: str) -> Any:
        return (self.sidecar or {}).get("config", {}).get(key)


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def read_sidecar(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``<artifact>.json`` written by ``shvit-convert``, or why it could not be used."""
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        return None, None
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"sidecar {sidecar.name} is unreadable ({type(exc).__name__}); ignored"
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        return None, f"sidecar {sidecar.name} is not a shvit-convert sidecar; ignored"
    if data.get("sha256") and data["sha256"] != sha256_path(path):
        return None, f"sidecar {sidecar.name} describes another file (sha256 differs: the artifact was modified); ignored"
    return data, None


def inspect(path: Path, *, read_graph: bool = False) -> ArtifactInfo:
    """Target, sidecar and graph facts of ``path`` (suffix already validated).

    A sidecar whose hash matches the file is trusted for input size and precision (no graph read:
    loading coremltools costs seconds) unless ``read_graph``; otherwise the graph is read.
    """
    info = ArtifactInfo(path=path, target=TARGET_OF_SUFFIX[path.suffix.lower()], size_bytes=size_of(path))
    info.sidecar, note = read_sidecar(path)
    if note:
        info.notes.append(note)
    if not read_graph and info.sidecar is not None and info.sidecar.get("sha256") and isinstance(info.sidecar_config("input_size"), int):
        info.input_size = info.sidecar_config("input_size")
        return info
    cmd = [sys.executable, "-m", "convert.validate.artifact_info", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSPECT_TIMEOUT_S, stdin=subprocess.DEVNULL,
                              env=_quiet_env())
    except subprocess.TimeoutExpired:
        info.unreadable = f"reading the graph took over {INSPECT_TIMEOUT_S:.0f} s"
        return info
    lines = proc.stdout.strip().splitlines()
    facts = json.loads(lines[-1]) if proc.returncode == 0 and lines else {"error": _tail(proc.stderr) or f"exit code {proc.returncode}"}
    if "error" in facts:
        info.unreadable = facts["error"]
    else:
        info.input_size, info.num_classes, info.graph_precision = facts["input_size"], facts["num_classes"], facts["precision"]
        info.ops = facts["ops"]
    return info


def _quiet_env() -> dict[str, str]:
    import os

    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _tail(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _spatial(shape: list[int | None]) -> int | None:
    """H of an NCHW or NHWC image input (whichever axis holds the 3 channels)."""
    if len(shape) != 4:
        return None
    height = shape[2] if shape[1] == 3 and shape[3] != 3 else shape[1]
    return height if isinstance(height, int) and height > 0 else None


def _onnx_facts(path: Path) -> dict[str, Any]:
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
    return {"input_size": _spatial(dims), "num_classes": out_dims[-1] if out_dims else None, "precision": precision,
            "ops": len(graph.node)}


def _tflite_facts(path: Path) -> dict[str, Any]:
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
    return {"input_size": _spatial([int(d) for d in inp.ShapeAsNumpy()]), "num_classes": out_shape[-1] if out_shape else None,
            "precision": precision, "ops": graph.OperatorsLength()}


def _coreml_facts(path: Path) -> dict[str, Any]:
    import coremltools as ct
    from coremltools.proto import MIL_pb2

    spec = ct.utils.load_spec(str(path))
    first = spec.description.input[0].type
    if first.WhichOneof("Type") == "imageType":
        size = int(first.imageType.height) or None
    else:
        size = _spatial([int(d) for d in first.multiArrayType.shape])
    classes = None
    for output in spec.description.output:
        if output.type.WhichOneof("Type") == "multiArrayType" and output.type.multiArrayType.shape:
            classes = int(output.type.multiArrayType.shape[-1])
    precision, runs = None, None
    if spec.WhichOneof("Type") == "mlProgram":
        main = spec.mlProgram.functions["main"]
        operations = list(main.block_specializations[main.opset].operations)
        types = {op.type for op in operations}
        runs = sum(1 for op in operations if op.type != "const" and not op.type.startswith("constexpr_"))
        const_types = {MIL_pb2.DataType.Name(op.attributes["val"].type.tensorType.dataType) for op in operations if op.type == "const"}
        if types & {"quantize", "dequantize"}:
            precision = "int8"
        elif any(name.startswith("constexpr_") for name in types):
            precision = "int8-weights"
        else:
            precision = "fp16" if "FLOAT16" in const_types else "fp32"
    return {"input_size": size, "num_classes": classes, "precision": precision, "ops": runs}


_FACTS = {"onnx": _onnx_facts, "tflite": _tflite_facts, "coreml": _coreml_facts}


def _child(path: str) -> int:
    artifact = Path(path)
    try:
        facts = _FACTS[TARGET_OF_SUFFIX[artifact.suffix.lower()]](artifact)
    except Exception as exc:  # the parent reports it as "unreadable", the runtime then says more
        text = str(exc).strip().splitlines()
        facts = {"error": f"{type(exc).__name__}: {text[0][:200] if text else ''}"}
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
