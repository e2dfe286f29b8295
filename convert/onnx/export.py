"""Fused model → ONNX (NCHW float32 pixels 0-255 in, logits out), simplified with onnxsim's API."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

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
            pixel_model.eval(), (example,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            opset_version=opset, dynamic_axes=dynamic_axes, dynamo=False, do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    if simplify:
        model = _simplify(model)
    onnx.checker.check_model(model)
    return model


def export_onnx(
    pixel_model: nn.Module,
    path: Path,
    *,
    input_size: int,
    opset: int = 17,
    dynamic_batch: bool = True,
    simplify: bool = True,
) -> onnx.ModelProto:
    """Write :func:`to_proto` of ``pixel_model`` to ``path`` and return the saved proto."""
    model = to_proto(pixel_model, input_size=input_size, opset=opset, dynamic_batch=dynamic_batch, simplify=simplify)
    onnx.save(model, str(path))
    return model


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ConvertError("onnxsim could not verify the simplified ONNX graph; re-run with --debug and report it")
    return simplified


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
