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


def export_onnx(
    pixel_model: nn.Module,
    path: Path,
    *,
    input_size: int,
    opset: int = 17,
    dynamic_batch: bool = True,
    simplify: bool = True,
) -> onnx.ModelProto:
    """Write ``pixel_model`` (a :class:`shvit.PixelInput`) to ``path`` and return the saved proto.

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
    onnx.save(model, str(path))
    return model


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ConvertError("onnxsim could not verify the simplified ONNX graph; re-run with --debug and report it")
    return simplified


def EXTRA_FILES(config) -> list[str]:  # noqa: N802 - the pipeline's per-target hook
    return []


def export(source, config, staging, *, log) -> dict:
    """Pipeline hook: the pixel-input deploy model as a simplified, dynamic-batch ONNX file."""
    path = staging.path(config.artifact_path.name)
    log(f"→ exporting ONNX (opset {config.opset}, onnxsim)")
    model = export_onnx(source.pixel_model, path, input_size=config.input_size, opset=config.opset)
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"input": {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "range": "RGB 0-255, normalisation baked in"},
            "output": {"name": OUTPUT_NAME, "classes": source.num_classes}, "op_counts": dict(sorted(ops.items()))}
