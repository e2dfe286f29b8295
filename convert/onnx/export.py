"""Fused model → ONNX (NCHW float32 pixels 0-255 in, logits out), simplified with onnxsim's API; fp16 on request."""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import onnx
import torch
from torch import nn

from convert.errors import ConvertError

INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"


def to_proto(
    pixel_model: nn.Module, *, input_size: int, opset: int = 17, dynamic_batch: bool = True, simplify: bool = True
) -> onnx.ModelProto:
    """The checked ONNX graph of ``pixel_model`` (a :class:`shvit.PixelInput`), in memory.

    The TorchScript exporter is used (``dynamo=False``): it is deterministic, which keeps re-exports
    byte-identical, and its graph is what onnx2tf expects.
    """
    example = torch.zeros(1, 3, input_size, input_size)
    dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            pixel_model.eval(),
            (example,),
            buffer,  # type: ignore[arg-type]  # torch annotates f as a path; the TorchScript exporter also writes to a file object
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            dynamo=False,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    if simplify:
        model = _simplify(model)
    onnx.checker.check_model(model)
    return model


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with float16 weights and activations, but float32 ``pixels`` in and ``logits`` out.

    Keeping the graph's inputs and outputs float32 (one Cast at each end) means an fp16 file is fed
    and read exactly like the fp32 one. The conversion is ONNX Runtime's own (``keep_io_types``),
    which knows the ops that must stay float32; ``model`` itself is left unchanged.
    """
    converted = _float16_module().convert_float_to_float16(onnx.ModelProto.FromString(model.SerializeToString()), keep_io_types=True)
    _sort_topologically(converted.graph)  # the converter appends its Casts at the end of the node list
    onnx.checker.check_model(converted)
    return converted


def _float16_module() -> ModuleType:
    """``onnxruntime.transformers.float16``, imported without the side effect of its package.

    ``onnxruntime/transformers/__init__.py`` appends its own folder to ``sys.path`` (for its scripts),
    which would let its many top-level modules shadow later imports of the same names.
    """
    saved = list(sys.path)
    try:
        from onnxruntime.transformers import float16
    except ImportError as exc:
        raise ConvertError(
            f"fp16 ONNX export needs onnxruntime's float16 converter, which this onnxruntime lacks ({exc}): "
            "pip install 'onnxruntime>=1.26,<1.27'"
        ) from None
    finally:
        sys.path[:] = saved
    return float16


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node follows the nodes it reads from, otherwise keeping their order."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        deferred = []
        for node in pending:  # one pass for a sorted graph, one more per node that was out of place
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                deferred.append(node)
        if len(deferred) == len(pending):
            raise ConvertError(f"internal error: the fp16 ONNX graph reads a tensor nothing writes (at node {pending[0].name!r})")
        pending = deferred
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


def set_metadata(model: onnx.ModelProto, props: Mapping[str, str], *, doc_string: str, producer: str, version: str) -> None:
    """Replace ``model``'s ``metadata_props`` with ``props`` (in their order) and set its description and producer."""
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = doc_string
    model.producer_name, model.producer_version = producer, version


def export_onnx(
    pixel_model: nn.Module,
    path: Path,
    *,
    input_size: int,
    opset: int = 17,
    dynamic_batch: bool = True,
    simplify: bool = True,
    precision: str = "fp32",
    describe: Callable[[onnx.ModelProto], None] | None = None,
) -> onnx.ModelProto:
    """Write :func:`to_proto` of ``pixel_model`` (:func:`to_fp16` of it for ``precision="fp16"``) to ``path``.

    ``describe`` edits the proto in place before it is saved (metadata); the saved proto is returned.
    """
    if precision not in ("fp32", "fp16"):
        raise ConvertError(f"ONNX export takes precision fp32 or fp16, not {precision!r}")
    model = to_proto(pixel_model, input_size=input_size, opset=opset, dynamic_batch=dynamic_batch, simplify=simplify)
    if precision == "fp16":
        model = to_fp16(model)
    if describe is not None:
        describe(model)
    onnx.save(model, str(path))
    return model


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ConvertError("onnxsim could not verify the simplified ONNX graph: please report it (with the traceback)")
    return simplified


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
