"""Accuracy-aware int8 against today's full int8, on image-dependent full-size SHViT, held-out images.

    python benchmarks/bench_int8.py [--variant s1] [--variant s3 ...] [--target tflite] [--target coreml]
                                    [--weights standin|CKPT] [--calib-count 32] [--held 128] [--runs 30]
                                    [--rounds 3] [--compare-methods] [--json results.json]

"Image-dependent": random weights with BatchNorm statistics recomputed on natural-looking images
(tests/helpers.py ``recompute_bn_stats``), so the logits depend on the image like a trained model's.
Calibration uses generated images of one seed; every figure is measured on images of another seed
(held out), against PyTorch: min cosine over images and top-1 agreement. Per variant and target:
TFLite dynamic-range int8 (``weights``: int8 weights, activations quantised per image, the
accuracy ceiling of TFLite's float islands), today's full int8 (``full``, min/max ranges) and the
default accuracy-aware int8 (``auto``), with
the ops kept float, the int8 share of MACs, XNNPACK partitions, LiteRT latency against fp32 TFLite
(interleaved rounds, one thread, in this run) and Core ML package size against fp16.

``--weights standin`` (or a checkpoint path) measures a trained SHViT instead: the stand-in
``benchmarks/make_standin.py`` distils from EfficientNet-Lite0. A trained model is measured on photos:
calibration and held-out views are crops of scikit-image's photos (two seeds; the ``standin`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import calib
import shvit
from convert.int8.engine import PLAIN_FULL_INT8, Int8Options
from convert.int8.ranges import METHODS
from convert.int8.report import INT8_TARGET, quality

TFLITE_LATENCY_TARGET = 0.6
COREML_SIZE_TARGET = 0.55
CALIB_SEED, HELD_SEED = 1, 7
WEIGHTS_SEED = 0


@dataclass
class Row:
    variant: str
    target: str
    mode: str
    ops_float: int | None
    int8_mac_share: float | None
    partitions: int | None
    min_cosine: float
    top1: float
    latency_ratio: float | None = None
    size_ratio: float | None = None
    seconds: float = 0.0
    passed: bool | None = None
    weights: str = "proxy"


def image_dependent(variant: str) -> tuple[torch.nn.Module, torch.nn.Module, int]:
    from calib.proxy import recompute_bn_stats

    torch.manual_seed(WEIGHTS_SEED)  # one weight draw per variant, the same in every run
    model = shvit.create_model(variant)
    model = recompute_bn_stats(model, size=model.config.img_size)
    return model, shvit.reparameterize(model), model.config.img_size


def measured_model(
    variant: str, weights: str | None, *, calib_count: int, held: int
) -> tuple[torch.nn.Module, torch.nn.Module, int, np.ndarray, np.ndarray]:
    """The model, its deploy form, input size, calibration and held-out pixels: generated images for the
    image-dependent proxy, photo views for a trained checkpoint."""
    if weights is None:
        model, deploy, size = image_dependent(variant)
        return (
            model,
            deploy,
            size,
            calib.synthetic_images(calib_count, size, seed=CALIB_SEED),
            calib.synthetic_images(held, size, seed=HELD_SEED),
        )
    from make_standin import CALIB_SEED as PHOTO_CALIB_SEED
    from make_standin import EVAL_SEED, photo_views, resolve_weights

    model = shvit.create_model(variant, weights=resolve_weights(weights, variant))
    size = model.config.img_size
    return (
        model,
        shvit.reparameterize(model),
        size,
        photo_views(calib_count, size, seed=PHOTO_CALIB_SEED),
        photo_views(held, size, seed=EVAL_SEED + 7),
    )


def bench_tflite(
    variant: str,
    model: torch.nn.Module,
    deploy: torch.nn.Module,
    size: int,
    *,
    calib_px: np.ndarray,
    held: np.ndarray,
    reference: np.ndarray,
    runs: int,
    rounds: int,
    compare: bool,
    tmp: Path,
) -> tuple[list[Row], dict[str, Any]]:
    from convert.bench.latency import measure
    from convert.io.scratch import Scratch
    from convert.tflite import graphinfo, int8_mixed
    from convert.tflite.export import export_tflite
    from convert.validate.runner import run_artifact

    labels = [f"class_{i}" for i in range(1000)]
    pixel_model = shvit.PixelInput(deploy)
    paths = {
        "fp32": tmp / f"{variant}_fp32.tflite",
        "weights": tmp / f"{variant}_int8_weights.tflite",
        "full": tmp / f"{variant}_int8_full.tflite",
        "auto": tmp / f"{variant}_int8_auto.tflite",
    }
    seconds, reports = {}, {}
    for mode, outputs, options in (
        ("full", {"fp32": paths["fp32"], "int8-weights": paths["weights"], "int8": paths["full"]}, PLAIN_FULL_INT8),
        ("auto", {"int8": paths["auto"]}, Int8Options(compare_methods=compare)),
    ):
        print(f"[{variant}] TFLite int8 {mode}", file=sys.stderr)
        started = time.perf_counter()
        written = export_tflite(
            pixel_model, outputs, input_size=size, labels=labels, calib_pixels=calib_px, int8=options, progress=False, log=lambda _: None
        )
        seconds[mode] = time.perf_counter() - started
        reports[mode] = written["int8"].int8_report
    times: dict[str, list[float]] = {key: [] for key in paths}
    with Scratch.open() as scratch:
        for _ in range(rounds):
            for key, path in paths.items():
                times[key].append(
                    measure(
                        "tflite", artifact=path, input_size=size, runs=runs, warmup=max(5, runs // 5), threads=1, scratch=scratch
                    ).median_ms
                )
    fp32_ms = float(np.median(times["fp32"]))
    rows = []
    for mode in ("weights", "full", "auto"):
        with Scratch.open() as scratch:
            q = quality(reference, run_artifact(paths[mode], held, scratch=scratch)[0])
        data = paths[mode].read_bytes()
        ratio = float(np.median(times[mode])) / fp32_ms
        report = reports.get(mode)
        floats = len(report["keep_float"]) if report else 0
        rows.append(
            Row(
                variant,
                "tflite",
                mode,
                floats,
                int8_mixed.int8_mac_share(data),
                graphinfo.delegation(paths[mode]).partitions,
                q.min_cosine,
                q.top1,
                latency_ratio=ratio,
                seconds=seconds.get(mode, 0.0),
                passed=INT8_TARGET.met_by(q) and ratio <= TFLITE_LATENCY_TARGET,
            )
        )
    return rows, {"auto_report": reports["auto"], "fp32_ms": fp32_ms}


def bench_coreml(
    variant: str,
    deploy: torch.nn.Module,
    size: int,
    *,
    calib_px: np.ndarray,
    held: np.ndarray,
    reference: np.ndarray,
    compare: bool,
    tmp: Path,
) -> tuple[list[Row], dict[str, Any]]:
    from convert.coreml.export import export_coreml
    from convert.coreml.mil_executor import MILExecutor

    labels = [f"class_{i}" for i in range(1000)]
    fp16 = export_coreml(deploy, tmp / f"{variant}_fp16.mlpackage", input_size=size, labels=labels, precision="fp16", min_ios="17")
    rows, extra = [], {}
    for mode, options in (("full", PLAIN_FULL_INT8), ("auto", Int8Options(compare_methods=compare))):
        print(f"[{variant}] Core ML W8A8 {mode}", file=sys.stderr)
        started = time.perf_counter()
        result = export_coreml(
            deploy,
            tmp / f"{variant}_int8_{mode}.mlpackage",
            input_size=size,
            labels=labels,
            precision="int8",
            min_ios="17",
            calib_pixels=calib_px,
            int8=options,
        )
        elapsed = time.perf_counter() - started
        q = quality(reference, MILExecutor(result.path).logits(held))
        report = result.int8_report
        ratio = result.size_bytes / fp16.size_bytes
        rows.append(
            Row(
                variant,
                "coreml",
                mode,
                len(report["keep_float"]) if report else 0,
                report["int8_mac_share"] if report else 1.0,
                None,
                q.min_cosine,
                q.top1,
                size_ratio=ratio,
                seconds=elapsed,
                passed=INT8_TARGET.met_by(q) and ratio <= COREML_SIZE_TARGET,
            )
        )
        if report:
            extra["auto_report"] = report
    return rows, extra


def table(rows: list[Row]) -> list[str]:
    head = f"{'weights':8} {'variant':7} {'target':6} {'mode':7} {'ops float':>9} {'int8 MACs':>9} {'XNNPACK':>7} {'min cos':>8} {'top-1':>6} {'lat/fp32':>8} {'size/fp16':>9} {'s':>6}  gate"
    lines = [head]
    for r in rows:

        def fmt(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        lines.append(
            f"{r.weights:8} {r.variant:7} {r.target:6} {r.mode:7} {fmt(r.ops_float, 'd'):>9} {fmt(r.int8_mac_share, '.1%'):>9} {fmt(r.partitions, 'd'):>7} "
            f"{r.min_cosine:8.4f} {r.top1:6.1%} {fmt(r.latency_ratio, '.2f'):>8} {fmt(r.size_ratio, '.2f'):>9} {r.seconds:6.0f}  "
            f"{'PASS' if r.passed else 'fail'}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", help="s1..s4 (repeatable; default s1)")
    parser.add_argument("--target", action="append", choices=("tflite", "coreml"), help="default: both")
    parser.add_argument(
        "--weights", default=None, help="standin (benchmarks/make_standin.py) or a checkpoint (default: image-dependent random weights)"
    )
    parser.add_argument("--calib-count", type=int, default=32)
    parser.add_argument("--held", type=int, default=128, help="held-out images measured (top-1 agreement moves in steps of 1/N)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare-methods", action="store_true", help=f"also report full-int8 quality for {', '.join(METHODS)}")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for variant in args.variant or ["s1"]:
        model, deploy, size, calib_px, held = measured_model(variant, args.weights, calib_count=args.calib_count, held=args.held)
        with torch.no_grad():
            reference = model(torch.from_numpy(calib.normalize(held))).numpy()
        with tempfile.TemporaryDirectory(prefix="shvit-bench-int8-") as tmp:
            for target in args.target or ["tflite", "coreml"]:
                if target == "tflite":
                    found, extra = bench_tflite(
                        variant,
                        model,
                        deploy,
                        size,
                        calib_px=calib_px,
                        held=held,
                        reference=reference,
                        runs=args.runs,
                        rounds=args.rounds,
                        compare=args.compare_methods,
                        tmp=Path(tmp),
                    )
                else:
                    found, extra = bench_coreml(
                        variant,
                        deploy,
                        size,
                        calib_px=calib_px,
                        held=held,
                        reference=reference,
                        compare=args.compare_methods,
                        tmp=Path(tmp),
                    )
                for row in found:
                    row.weights = args.weights or "proxy"
                rows += found
                details[f"{variant}/{target}"] = extra
                print("\n".join(table(rows)), file=sys.stderr)
    print("\n".join(table(rows)))
    for key, extra in details.items():
        report = extra.get("auto_report") or {}
        if report.get("calibration_methods"):
            print(
                f"{key} full-int8 by calibration method (calibration images): "
                + ", ".join(f"{m} {q['min_cosine']:.4f}/{q['top1']:.0%}" for m, q in report["calibration_methods"].items())
            )
        if report:
            worst = sorted((op for op in report["ops"] if op["own_sqnr_db"] is not None), key=lambda op: op["own_sqnr_db"])[:5]
            print(
                f"{key} auto: outcome {report['outcome']}, {len(report['keep_float'])} ops float, worst own errors: "
                + ", ".join(f"{op['name']} {op['own_sqnr_db']:.1f} dB" for op in worst)
            )
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(r) for r in rows], "details": details}, indent=1))


if __name__ == "__main__":
    main()
