"""What the Android app needs to know about a ``.tflite`` model, read from its flatbuffer.

Input shape, layout, dtype and quantisation, the output's class count and whether it already ends
in a softmax come from the model's own graph (LiteRT's generated schema); labels from the
TFLite Metadata's associated files packed into the model (the standard zip appended to the
flatbuffer) or, failing that, a ``labels.txt`` beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convert.labels import LabelTextError, label_lines
from convert.tflite import graphinfo, metadata
from mobile_demo.errors import DemoError, NotAnImageClassifier, checked_model_path
from shvit.config import Preprocessing

TFLITE_SUFFIX = ".tflite"
SIBLING_LABEL_NAMES = ("{stem}.labels.txt", "{stem}_labels.txt", "labels.txt")
"""Label files looked for beside the model, in this order, when none is embedded."""
INPUT_DTYPES = ("float32", "uint8", "int8")
OUTPUT_DTYPES = ("float32", "uint8", "int8")
_PASS_THROUGH_OPS = ("QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE")


@dataclass(frozen=True)
class LabelSource:
    """Where the app finds the labels: ``metadata`` (a file packed in the model) or ``file`` (an asset)."""

    kind: str
    name: str
    origin: str


@dataclass(frozen=True)
class TFLiteFacts:
    """The model facts the generated Kotlin code is specialised to."""

    path: Path
    input_name: str
    layout: str
    height: int
    width: int
    input_dtype: str
    input_scale: float
    input_zero_point: int
    output_name: str
    output_dtype: str
    output_scale: float
    output_zero_point: int
    num_classes: int
    outputs_probabilities: bool
    labels: tuple[str, ...]
    label_source: LabelSource
    crop_fraction: float


def read_tflite(path: Path) -> TFLiteFacts:
    """Facts of an image classifier ``.tflite``; a :class:`DemoError` naming the problem otherwise."""
    path = checked_model_path(
        path, suffix=TFLITE_SUFFIX, folder=False, target="tflite", kind="TFLite file", takes="the Android demo takes a .tflite model"
    )
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes()
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise DemoError(f"model {path} is not a TFLite flatbuffer (no TFL3 identifier): re-export it for the tflite target")
    try:
        model = schema.Model.GetRootAs(data, 0)
        graph = _graph_facts(model, schema, path)
        packed = metadata.packed_labels(data, num_classes=graph["num_classes"])
    except DemoError:
        raise
    except Exception as exc:  # a truncated or damaged flatbuffer raises struct/index errors
        raise DemoError(f"model {path} is a damaged TFLite file ({type(exc).__name__}: {exc}); re-export it") from None
    labels, source = _labels(path, graph["num_classes"], packed)
    crop = Preprocessing(input_size=graph["height"]).crop_fraction
    return TFLiteFacts(path=path, labels=labels, label_source=source, crop_fraction=crop, **graph)


def _graph_facts(model: Any, schema: Any, path: Path) -> dict[str, Any]:
    if model.SubgraphsLength() < 1:
        raise NotAnImageClassifier(f"{path.name} has no subgraph to run")
    graph = model.Subgraphs(0)
    if graph.InputsLength() != 1:
        raise NotAnImageClassifier(f"{path.name} has {graph.InputsLength()} inputs: the demo runs models with one image input")
    if graph.OutputsLength() != 1:
        raise NotAnImageClassifier(f"{path.name} has {graph.OutputsLength()} outputs: an image classifier has one (the class scores)")
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    tensor_in = graph.Tensors(graph.Inputs(0))
    tensor_out = graph.Tensors(graph.Outputs(0))
    in_shape = _shape(tensor_in)
    layout, height, width = _image_layout(in_shape, _signature(tensor_in), path)
    in_dtype, out_dtype = type_names.get(tensor_in.Type(), "?"), type_names.get(tensor_out.Type(), "?")
    if in_dtype not in INPUT_DTYPES:
        raise NotAnImageClassifier(f"{path.name} takes {in_dtype} input: the demo feeds float32, uint8 or int8 pixels")
    out_shape = _shape(tensor_out)
    classes = out_shape[-1] if out_shape else 0
    if len(out_shape) not in (1, 2) or (len(out_shape) == 2 and out_shape[0] != 1) or classes < 2:
        raise NotAnImageClassifier(
            f"{path.name} outputs a tensor of shape {out_shape}, not one score per class: the demo runs image classifiers"
        )
    if out_dtype not in OUTPUT_DTYPES:
        raise NotAnImageClassifier(f"{path.name} outputs {out_dtype} scores: the demo reads float32, uint8 or int8 outputs")
    in_scale, in_zero = _quantization(tensor_in)
    out_scale, out_zero = _quantization(tensor_out)
    if in_dtype != "float32" and in_scale <= 0:
        raise DemoError(f"{path.name} takes {in_dtype} input without quantisation parameters: re-export it")
    return {
        "input_name": _name(tensor_in),
        "layout": layout,
        "height": height,
        "width": width,
        "input_dtype": in_dtype,
        "input_scale": in_scale,
        "input_zero_point": in_zero,
        "output_name": _name(tensor_out),
        "output_dtype": out_dtype,
        "output_scale": out_scale,
        "output_zero_point": out_zero,
        "num_classes": classes,
        "outputs_probabilities": _ends_in_softmax(model, graph, graph.Outputs(0)),
    }


def _image_layout(shape: list[int], signature: list[int], path: Path) -> tuple[str, int, int]:
    if len(shape) != 4 or shape[0] != 1:
        raise NotAnImageClassifier(f"{path.name} takes a tensor of shape {shape}, not one image (1, H, W, 3) or (1, 3, H, W)")
    if any(d < 0 for d in signature[1:]):
        raise NotAnImageClassifier(f"{path.name} has a dynamic image size {signature}: export it with a fixed input size")
    if shape[3] == 3:
        return "NHWC", shape[1], shape[2]
    if shape[1] == 3:
        return "NCHW", shape[2], shape[3]
    raise NotAnImageClassifier(f"{path.name} takes a tensor of shape {shape}: an RGB image input has 3 channels")


def _shape(tensor: Any) -> list[int]:
    return [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []


def _signature(tensor: Any) -> list[int]:
    return [int(d) for d in tensor.ShapeSignatureAsNumpy()] if tensor.ShapeSignatureLength() else _shape(tensor)


def _name(tensor: Any) -> str:
    return (tensor.Name() or b"").decode("utf-8", "replace")


def _quantization(tensor: Any) -> tuple[float, int]:
    """Per-tensor (scale, zero point); (0, 0) when the tensor is not quantised."""
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return 0.0, 0
    if q.ScaleLength() != 1:
        raise DemoError(f"tensor {_name(tensor)!r} is quantised per channel: the demo handles per-tensor input/output quantisation")
    return float(q.Scale(0)), int(q.ZeroPoint(0)) if q.ZeroPointLength() else 0


def _ends_in_softmax(model: Any, graph: Any, tensor_index: int) -> bool:
    """True when the output is already probabilities (SOFTMAX, possibly followed by (de)quantise/reshape)."""
    op_names = graphinfo.op_name_table(model)
    producers = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        for out in op.OutputsAsNumpy() if op.OutputsLength() else []:
            producers[int(out)] = op
    seen = set()
    while tensor_index in producers and tensor_index not in seen:
        seen.add(tensor_index)
        op = producers[tensor_index]
        name = op_names[op.OpcodeIndex()]
        if name == "SOFTMAX":
            return True
        if name not in _PASS_THROUGH_OPS or op.InputsLength() == 0:
            return False
        tensor_index = int(op.Inputs(0))
    return False


def _labels(path: Path, num_classes: int, packed: tuple[str, list[str]] | None) -> tuple[tuple[str, ...], LabelSource]:
    if packed is not None:
        name, packed_labels = packed
        return tuple(packed_labels), LabelSource("metadata", name, f"{path.name} (TFLite metadata file {name})")
    for pattern in SIBLING_LABEL_NAMES:
        candidate = path.with_name(pattern.format(stem=path.stem))
        if candidate.is_file():
            labels = _parse_labels(candidate.read_bytes(), f"labels file {candidate}")
            if len(labels) != num_classes:
                raise DemoError(
                    f"labels file {candidate} has {len(labels)} labels but {path.name} outputs {num_classes} classes: "
                    "give one label per line, one per class"
                )
            return labels, LabelSource("file", "labels.txt", str(candidate))
    raise DemoError(
        f"{path.name} has no labels: none is packed in its metadata and there is no labels.txt beside it; "
        f"write the {num_classes} class names, one per line, to {path.with_name('labels.txt')}"
    )


def _parse_labels(raw: bytes, where: str) -> tuple[str, ...]:
    try:
        return tuple(label_lines(raw))
    except LabelTextError as exc:
        if exc.blank_line is None:
            raise DemoError(f"{where} is not UTF-8 text: save it as UTF-8, one label per line") from None
        raise DemoError(f"{where} has blank lines: one label per line, none blank") from None
