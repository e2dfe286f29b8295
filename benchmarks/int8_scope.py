"""Why "every op int8" costs TFLite far more than Core ML on the same model: what each one quantises.

Core ML's W8A8 (coremltools' activation passes) rounds the activations around convolutions, adds and
pools only; attention (q·kᵀ and its softmax), the normalisations and the classifier stay fp16. TFLite's
full integer rounds every op. This script exports the same image-dependent S1 (bench_int8's weight
draw, calibration and held-out images) four ways with every op of the chosen kinds int8, and the TFLite
model once more with only Core ML's op kinds int8, then measures each against PyTorch:

    python benchmarks/int8_scope.py                # S1, 32 calibration and 128 held-out images
    python benchmarks/int8_scope.py --variant s3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_int8 import CALIB_SEED, HELD_SEED, image_dependent  # this folder is on sys.path when the script runs

import calib
import shvit
from convert.int8.engine import Int8Options
from convert.int8.report import Quality, quality

COREML_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D")
"""TFLite's names for the op kinds Core ML's W8A8 quantises (``conv``, ``add``, ``avg_pool``, ``max_pool``)."""


def tflite_full(deploy: torch.nn.Module, size: int, calib_px: np.ndarray, *, keep_float: tuple[str, ...], path: Path) -> Path:
    from convert.tflite.export import export_tflite

    export_tflite(
        shvit.PixelInput(deploy),
        {"int8": path},
        input_size=size,
        labels=[f"class_{i}" for i in range(1000)],
        calib_pixels=calib_px,
        int8=Int8Options(mode="full", calibration="minmax", keep_float=keep_float),
        log=lambda _: None,
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="s1")
    parser.add_argument("--calib-count", type=int, default=32)
    parser.add_argument("--held", type=int, default=128)
    args = parser.parse_args()

    from convert.coreml.export import export_coreml
    from convert.coreml.mil_executor import MILExecutor
    from convert.io.scratch import Scratch
    from convert.tflite.int8_mixed import quantised_ops
    from convert.validate.runner import run_artifact

    model, deploy, size = image_dependent(args.variant)
    calib_px = calib.synthetic_images(args.calib_count, size, seed=CALIB_SEED)
    held = calib.synthetic_images(args.held, size, seed=HELD_SEED)
    with torch.no_grad():
        reference = model(torch.from_numpy(calib.normalize(held))).numpy()
    rows: list[tuple[str, Quality]] = []
    with tempfile.TemporaryDirectory(prefix="shvit-int8-scope-") as tmp, Scratch.open() as scratch:
        folder = Path(tmp)
        print(f"[{args.variant}] TFLite full integer, every op", file=sys.stderr)
        every = tflite_full(deploy, size, calib_px, keep_float=(), path=folder / "every.tflite")
        ops = quantised_ops(every.read_bytes())
        others = tuple(op.name for op in ops if op.op_type not in COREML_KINDS)
        kinds = sorted({op.op_type for op in ops if op.op_type not in COREML_KINDS})
        rows.append((f"TFLite, all {len(ops)} quantised ops int8", quality(reference, run_artifact(every, held, scratch=scratch)[0])))
        print(f"[{args.variant}] TFLite, Core ML's op kinds only", file=sys.stderr)
        scoped = tflite_full(deploy, size, calib_px, keep_float=others, path=folder / "scoped.tflite")
        rows.append(
            (
                f"TFLite, {len(ops) - len(others)} conv/add/pool ops int8 ({', '.join(kinds)} float)",
                quality(reference, run_artifact(scoped, held, scratch=scratch)[0]),
            )
        )
        print(f"[{args.variant}] Core ML W8A8, every op it quantises", file=sys.stderr)
        package = export_coreml(
            deploy,
            folder / "w8a8.mlpackage",
            input_size=size,
            labels=[f"class_{i}" for i in range(1000)],
            precision="int8",
            min_ios="17",
            calib_pixels=calib_px,
            int8=Int8Options(mode="full", calibration="minmax"),
        )
        report = package.int8_report or {}
        rows.append(
            (
                f"Core ML W8A8, all {len(report.get('ops', []))} quantised ops int8",
                quality(reference, MILExecutor(package.path).logits(held)),
            )
        )
    print(
        f"SHViT-{args.variant.upper()}, image-dependent random weights, min/max ranges on {args.calib_count} images, {args.held} held-out:"
    )
    print(f"{'what is int8':70} {'min cos':>8} {'mean cos':>9} {'top-1':>6}")
    for name, q in rows:
        print(f"{name:70} {q.min_cosine:8.4f} {q.mean_cosine:9.4f} {q.top1:6.1%}")


if __name__ == "__main__":
    main()
