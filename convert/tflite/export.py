"""Deploy model → TFLite (fp32, fp16, int8-weights, int8) via ONNX and onnx2tf, with metadata.

Float models take NHWC float32 RGB pixels 0-255 (ImageNet normalisation baked into the graph) and
output logits. Full-int8 models take uint8 RGB pixels (scale 1, zero point 0) and output float32
logits. Every model carries its labels and an input description (see :mod:`.metadata`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from convert.errors import ArgumentError, ConvertError
from convert.int8.engine import Int8Options
from convert.io.scratch import Scratch
from convert.onnx.export import INPUT_NAME, OUTPUT_NAME, export_onnx
from convert.tflite import graphinfo, metadata
from convert.tflite.graph import tflite_friendly
from convert.tflite.onnx2tf_runner import convert_onnx
from convert.tflite.quantize import PRECISIONS

Log = Callable[[str], None]

INPUT_NOTES: dict[str, str] = {
    "float32": "RGB pixels 0-255 as float32, NHWC; ImageNet normalisation is inside the model",
    "uint8": "RGB pixels 0-255 as uint8, NHWC (camera bytes as they are); normalisation is inside the model",
}
OUTPUT_NOTE = "class logits (apply softmax for probabilities), float32"


@dataclass(frozen=True)
class TFLiteExport:
    """One written ``.tflite`` and what its graph holds."""

    path: Path
    precision: str
    op_counts: dict[str, int]
    input: graphinfo.TensorInfo
    output: graphinfo.TensorInfo
    toolchain: dict[str, Any]
    int8_report: dict[str, Any] | None = None
    """For accuracy-aware ``int8`` (``int8=`` given): :class:`convert.int8.report.Int8Report` as a dict."""


def export_tflite(
    pixel_model: nn.Module,
    outputs: Mapping[str, Path],
    *,
    input_size: int,
    labels: list[str],
    name: str = "SHViT",
    calib_pixels: np.ndarray | None = None,
    int8: Int8Options | None = None,
    opset: int = 17,
    rewrite: bool = True,
    progress: bool = False,
    scratch: Scratch | None = None,
    log: Log | None = None,
) -> dict[str, TFLiteExport]:
    """Write one ``.tflite`` per ``outputs[precision]`` from a single onnx2tf conversion.

    ``pixel_model`` is a :class:`shvit.PixelInput`; ``rewrite=False`` converts it as it is (the
    plain path, for comparison) instead of in its TFLite-friendly form (:mod:`.graph`).
    ``calib_pixels`` (uint8 NHWC, from :func:`calib.load_folder`) are needed for ``int8``.
    Temporary files live in ``scratch`` (a private one when not given).
    ``int8`` (:class:`convert.int8.engine.Int8Options`, default auto) says how ``int8`` is made: mode
    auto/full, ops kept float, calibration method.
    """
    unknown = sorted(set(outputs) - set(PRECISIONS))
    if unknown:
        raise ArgumentError(f"unknown TFLite precision {unknown[0]!r}: choose one of {', '.join(PRECISIONS)}", argument="precision")
    if scratch is None:
        with Scratch.open() as private:
            return export_tflite(
                pixel_model,
                outputs,
                input_size=input_size,
                labels=labels,
                name=name,
                calib_pixels=calib_pixels,
                int8=int8,
                opset=opset,
                rewrite=rewrite,
                progress=progress,
                scratch=private,
                log=log,
            )
    log = log or (lambda _message: None)
    model = tflite_friendly(pixel_model) if rewrite else pixel_model.eval()
    with scratch.temporary("shvit-tflite-") as tmp:
        onnx_path = tmp / "model.onnx"
        log(f"→ exporting ONNX (opset {opset}, batch 1{', TFLite-friendly graph' if rewrite else ''})")
        export_onnx(model, onnx_path, input_size=input_size, opset=opset, dynamic_batch=False)
        log(
            f"→ converting with onnx2tf to TFLite {', '.join(outputs)}"
            + (f" (int8 calibrated on {len(calib_pixels)} images)" if "int8" in outputs and calib_pixels is not None else "")
        )
        raw = {p: tmp / f"{p}.tflite" for p in outputs}
        run = convert_onnx(
            onnx_path,
            raw,
            scratch=scratch,
            calib_pixels=calib_pixels,
            int8=(int8 or Int8Options()).as_dict(),
            progress=progress,
            log=log,
        )
        log("  " + ", ".join(f"{step} {seconds} s" for step, seconds in run["timings_s"].items()))
        toolchain = {"onnx2tf": run["onnx2tf_version"], "onnxsim": run["onnxsim"], "seconds": run["timings_s"]}
        written = {}
        for precision, out in outputs.items():
            data = raw[precision].read_bytes()
            inp, outp = (replace(t, name=n) for t, n in zip(graphinfo.io_tensors(data), (INPUT_NAME, OUTPUT_NAME)))
            _check_io(precision, inp, outp, input_size, len(labels))
            info = metadata.ModelInfo(
                name=name,
                description=f"{name} image classifier ({precision}), exported by shvit-mobile",
                version=precision,
                labels=list(labels),
                labels_file=Path(out).with_suffix(".labels.txt").name,
                input_size=input_size,
                input_description=INPUT_NOTES[inp.dtype],
                output_description=OUTPUT_NOTE,
                extra={
                    "input": io_record(inp, layout="NHWC"),
                    "output": io_record(outp),
                    "export": {
                        "precision": precision,
                        "onnx2tf": run["onnx2tf_version"],
                        "graph": "tflite-friendly" if rewrite else "plain",
                    },
                },
            )
            Path(out).write_bytes(metadata.embed(data, info, io_names=(INPUT_NAME, OUTPUT_NAME)))
            report = run.get("int8_report") if precision == "int8" else None
            written[precision] = TFLiteExport(Path(out), precision, graphinfo.op_counts(data), inp, outp, toolchain, report)
    return written


def _check_io(precision: str, inp: graphinfo.TensorInfo, out: graphinfo.TensorInfo, size: int, classes: int) -> None:
    """The contract the app relies on: NHWC image in, one float score per class out."""
    expected_in = "uint8" if precision == "int8" else "float32"
    problems = []
    if inp.shape != (1, size, size, 3) or inp.dtype != expected_in:
        problems.append(f"input {inp.dtype}{list(inp.shape)}, expected {expected_in}[1, {size}, {size}, 3]")
    if precision == "int8" and (inp.scale != 1.0 or inp.zero_point != 0):
        problems.append(f"uint8 input quantised with scale {inp.scale:g} and zero point {inp.zero_point}, expected 1 and 0")
    if out.shape != (1, classes) or out.dtype != "float32":
        problems.append(f"output {out.dtype}{list(out.shape)}, expected float32[1, {classes}]")
    if problems:
        raise ConvertError(f"the TFLite {precision} model does not have the expected interface: {'; '.join(problems)}")


def io_record(tensor: graphinfo.TensorInfo, *, layout: str | None = None) -> dict[str, Any]:
    record = tensor.as_dict()
    if layout:
        record.update(layout=layout, range="RGB 0-255", normalization="baked into the model (ImageNet mean/std)")
    if tensor.dtype == "float32":
        for key in ("scale", "zero_point"):
            record.pop(key)
    return record


def to_flatbuffer(
    pixel_model: nn.Module,
    *,
    precision: str = "fp32",
    input_size: int,
    labels: list[str],
    calib_pixels: np.ndarray | None = None,
    name: str = "SHViT",
    progress: bool = False,
) -> bytes:
    """The ``.tflite`` bytes (metadata included) of ``pixel_model`` at ``precision``, with no file left behind."""
    with Scratch.open() as scratch, scratch.temporary("shvit-flatbuffer-") as folder:
        path = folder / f"model{precision}.tflite"
        export_tflite(
            pixel_model,
            {precision: path},
            input_size=input_size,
            labels=labels,
            name=name,
            calib_pixels=calib_pixels,
            progress=progress,
            scratch=scratch,
        )
        return path.read_bytes()


def gpu_delegate_record(artifact: Path, *, log: Log) -> dict[str, Any]:
    """The sidecar's ``gpu_delegate`` entry (:mod:`convert.tflite.gpu_compat`) and its log line; an unreadable graph is recorded, not fatal."""
    from convert.tflite.gpu_compat import gpu_compatibility_of

    try:
        result = gpu_compatibility_of(artifact)
    except ConvertError as exc:
        log(f"  GPU delegate: not checked: {exc}")
        return {"checked": False, "reason": str(exc)}
    log(f"  GPU delegate: {result.summary()} ({result.analyzer})")
    return result.as_dict()
