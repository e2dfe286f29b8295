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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convert import targets
from convert.io.child import ChildFailure, report_child_error, run_child
from convert.io.scratch import Scratch
from convert.validate.runner import child_target

DEFAULT_TIMEOUT_S = 900.0
PYTORCH = "pytorch"


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
    kind: str, *, input_size: int, runs: int, warmup: int, threads: int, scratch: Scratch, artifact: Path | None = None,
    variant: str | None = None, weights: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Latency:
    """Latency of one model in its runtime: ``kind`` is ``pytorch`` (the reference, from ``variant`` and
    ``weights``) or a target's name (``artifact``); raises LatencyUnavailable with a one-line reason."""
    where = ["pytorch", ""]
    if kind != PYTORCH:
        target = targets.get(kind)
        reason = target.latency_unavailable()
        if reason:
            raise LatencyUnavailable(reason)
        where = [type(target).__module__, target.name]
    spec = {"where": where, "artifact": str(artifact) if artifact else None, "variant": variant, "weights": weights,
            "input_size": input_size, "runs": runs, "warmup": warmup, "threads": threads}
    with scratch.temporary("shvit-bench-") as tmp:
        out = tmp / "latency.json"
        try:
            run_child(["convert.bench.latency", json.dumps(spec), str(out)], timeout_s=timeout_s,
                      env={"OMP_NUM_THREADS": str(threads), **scratch.child_env()})
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

    import shvit

    torch.set_num_threads(spec["threads"])
    model = shvit.create_model(spec["variant"], weights=spec["weights"])
    x = torch.from_numpy(shvit.normalize(_pixels(spec["input_size"])))

    def step() -> object:
        with torch.inference_mode():
            return model(x)

    return step, f"PyTorch {torch.__version__.split('+')[0]} eager (unfused), {spec['threads']} thread(s)"


def _child(spec_json: str, out: str) -> int:
    try:
        spec = json.loads(spec_json)
        module, name = spec["where"]
        if module == PYTORCH:
            step, runtime = _pytorch(spec)
        else:
            target = child_target(module, name)
            step, runtime = target.timer(Path(spec["artifact"]), _pixels(spec["input_size"]), threads=spec["threads"])
        times = time_runs(step, runs=spec["runs"], warmup=spec["warmup"])
        Path(out).write_text(json.dumps({"runtime": runtime, "times_ms": times}))
    except Exception as exc:  # reported to the parent as one line
        report_child_error(exc)
        return 1
    return 0


if __name__ == "__main__":
    from convert.io.scratch import exit_with_parent

    exit_with_parent()
    sys.exit(_child(sys.argv[1], sys.argv[2]))
