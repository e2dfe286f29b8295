"""Host latency in the runtime that will run each model, one subprocess per measurement.

A subprocess per runtime keeps measurements independent (no shared thread pools, allocator state or
imported libraries between ONNX Runtime, LiteRT and PyTorch) and turns a native abort into a row
that says so. Batch 1, warm-up runs first, then the median and 90th percentile of timed runs.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convert.validate.runner import ChildFailure, report_child_error, run_child

DEFAULT_TIMEOUT_S = 900.0
KINDS = ("pytorch", "onnx", "tflite", "coreml")
OFF_MACOS = "unavailable off macOS (Core ML runs only on Apple platforms)"


@dataclass(frozen=True)
class Latency:
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    warmup: int
    threads: int
    runtime: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LatencyUnavailable(Exception):
    """No latency for this row, with the reason a user reads in its place (crash, platform)."""


def host_description() -> str:
    """CPU model and core count: absolute latencies only mean something next to them."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def measure(
    kind: str, *, input_size: int, runs: int, warmup: int, threads: int, artifact: Path | None = None,
    variant: str | None = None, weights: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Latency:
    """Latency of one model in its runtime (``kind``); raises LatencyUnavailable with a one-line reason."""
    if kind == "coreml" and sys.platform != "darwin":
        raise LatencyUnavailable(OFF_MACOS)
    spec = {"kind": kind, "artifact": str(artifact) if artifact else None, "variant": variant, "weights": weights,
            "input_size": input_size, "runs": runs, "warmup": warmup, "threads": threads}
    with tempfile.TemporaryDirectory(prefix="shvit-bench-") as tmp:
        out = Path(tmp) / "latency.json"
        try:
            run_child(["convert.bench.latency", json.dumps(spec), str(out)], timeout_s=timeout_s,
                      env={"OMP_NUM_THREADS": str(threads)})
        except ChildFailure as exc:
            raise LatencyUnavailable(exc.describe("the runtime", "while timing the model")) from None
        if not out.exists():
            raise LatencyUnavailable("the timing run wrote no result")
        result = json.loads(out.read_text())
    times = np.asarray(result["times_ms"], dtype=np.float64)
    return Latency(
        median_ms=float(np.median(times)), p90_ms=float(np.percentile(times, 90)), mean_ms=float(times.mean()),
        min_ms=float(times.min()), runs=runs, warmup=warmup, threads=threads, runtime=result["runtime"],
    )


# ---- inside the subprocess -------------------------------------------------------------------


def time_runs(step: Callable[[], object], *, runs: int, warmup: int) -> list[float]:
    """Milliseconds of ``runs`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _pixels(size: int) -> np.ndarray:
    import calib

    return calib.synthetic_images(1, size, seed=0)


def _pytorch(spec: dict[str, Any]) -> tuple[Callable[[], object], str]:
    import torch

    import calib
    import shvit

    torch.set_num_threads(spec["threads"])
    model = shvit.create_model(spec["variant"], weights=spec["weights"])
    x = torch.from_numpy(calib.normalize(_pixels(spec["input_size"])))

    def step() -> object:
        with torch.inference_mode():
            return model(x)

    return step, f"PyTorch {torch.__version__.split('+')[0]} eager (unfused), {spec['threads']} thread(s)"


def _onnx(spec: dict[str, Any]) -> tuple[Callable[[], object], str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = spec["threads"]
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(spec["artifact"], options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    feed = {name: _pixels(spec["input_size"]).astype(np.float32).transpose(0, 3, 1, 2).copy()}
    return (lambda: session.run(None, feed)), f"ONNX Runtime {ort.__version__} (CPU), {spec['threads']} thread(s)"


def _tflite(spec: dict[str, Any]) -> tuple[Callable[[], object], str]:
    from ai_edge_litert import __version__ as litert_version
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=spec["artifact"], num_threads=spec["threads"])
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    pixels = _pixels(spec["input_size"])
    if list(detail["shape"][1:]) != list(pixels.shape[1:]):
        pixels = pixels.transpose(0, 3, 1, 2)
    if detail["dtype"] == np.uint8:
        x = pixels.astype(np.uint8)
    elif detail["dtype"] == np.int8:
        scale, zero = detail["quantization"]
        x = np.clip(np.round(pixels / scale + zero), -128, 127).astype(np.int8)
    else:
        x = pixels.astype(detail["dtype"])
    x = np.ascontiguousarray(x)

    def step() -> object:
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        return None

    return step, f"LiteRT {litert_version} (XNNPACK), {spec['threads']} thread(s)"


def _coreml(spec: dict[str, Any]) -> tuple[Callable[[], object], str]:
    import coremltools as ct
    from PIL import Image

    model = ct.models.MLModel(spec["artifact"], compute_units=ct.ComputeUnit.ALL)
    first = model.get_spec().description.input[0]
    pixels = _pixels(spec["input_size"])
    if first.type.WhichOneof("Type") == "imageType":
        feed = {first.name: Image.fromarray(pixels[0])}
    else:
        feed = {first.name: pixels.astype(np.float32).transpose(0, 3, 1, 2)}
    return (lambda: model.predict(feed)), f"Core ML {ct.__version__} (compute units ALL)"


_RUNTIMES: dict[str, Callable[[dict[str, Any]], tuple[Callable[[], object], str]]] = {
    "pytorch": _pytorch, "onnx": _onnx, "tflite": _tflite, "coreml": _coreml,
}


def _child(spec_json: str, out: str) -> int:
    try:
        spec = json.loads(spec_json)
        step, runtime = _RUNTIMES[spec["kind"]](spec)
        times = time_runs(step, runs=spec["runs"], warmup=spec["warmup"])
        Path(out).write_text(json.dumps({"runtime": runtime, "times_ms": times}))
    except Exception as exc:  # reported to the parent as one line
        report_child_error(exc)
        return 1
    return 0


if __name__ == "__main__":
    from convert.scratch import exit_with_parent

    exit_with_parent()
    sys.exit(_child(sys.argv[1], sys.argv[2]))
