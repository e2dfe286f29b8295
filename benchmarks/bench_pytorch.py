"""PyTorch CPU latency of SHViT unfused vs deploy mode, and ONNX Runtime, per variant (batch 1).

    python benchmarks/bench_pytorch.py [--variants s1,s2,s3,s4] [--runs 30] [--warmup 5]

Ratios are measured in the same run, so they hold on any machine; absolute numbers are this host's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import shvit
from convert.bench.latency import time_runs
from convert.onnx.export import export_onnx


def median_ms(fn: Callable[[], object], *, runs: int, warmup: int) -> float:
    return statistics.median(time_runs(fn, runs=runs, warmup=warmup))


def bench_variant(variant: str, *, runs: int, warmup: int, all_threads: int) -> dict[str, float]:
    size = shvit.VARIANTS[variant].config.img_size
    model = shvit.create_model(variant)
    deploy = shvit.reparameterize(model)
    x = torch.rand(1, 3, size, size)
    row: dict[str, float] = {}
    with torch.inference_mode():
        for threads in (1, all_threads):
            torch.set_num_threads(threads)
            row[f"unfused_{threads}t"] = median_ms(lambda: model(x), runs=runs, warmup=warmup)
            row[f"deploy_{threads}t"] = median_ms(lambda: deploy(x), runs=runs, warmup=warmup)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export_onnx(shvit.PixelInput(deploy), path, input_size=size, dynamic_batch=False)
        feed = {"pixels": (x.numpy() * 255).astype(np.float32)}
        for threads in (1, all_threads):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            row[f"ort_{threads}t"] = median_ms(lambda session=session: session.run(None, feed), runs=runs, warmup=warmup)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="s1,s2,s3,s4")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    all_threads = os.cpu_count() or 1
    header = f"{'variant':8} {'thr':>3} {'unfused ms':>11} {'deploy ms':>10} {'deploy speed-up':>16} {'ORT ms':>8} {'ORT vs unfused':>15}"
    print(f"PyTorch {torch.__version__}, ONNX Runtime {ort.__version__}, batch 1, median of {args.runs} runs after {args.warmup} warm-up")
    print(header)
    print("-" * len(header))
    for variant in args.variants.split(","):
        row = bench_variant(variant.strip(), runs=args.runs, warmup=args.warmup, all_threads=all_threads)
        for threads in (1, all_threads):
            unfused, deploy, ort_ms = row[f"unfused_{threads}t"], row[f"deploy_{threads}t"], row[f"ort_{threads}t"]
            print(
                f"{variant:8} {threads:>3} {unfused:>11.2f} {deploy:>10.2f} {unfused / deploy:>15.2f}x "
                f"{ort_ms:>8.2f} {unfused / ort_ms:>14.2f}x"
            )


if __name__ == "__main__":
    main()
