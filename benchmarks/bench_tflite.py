"""TFLite graphs: our export vs the plain path (fused model → ONNX opset 17 → onnx2tf defaults).

    python benchmarks/bench_tflite.py [--variant s3] [--variant s1 ...] [--weights CKPT] [--calib DIR]
                                      [--runs 40] [--rounds 3] [--json results.json]

For each variant, in one run: op counts of both fp32 graphs (TRANSPOSE, RESHAPE, SPLIT_V, ...),
XNNPACK partitions of every graph (fp32 and int8 included), LiteRT GPU delegate coverage of the
float graphs, ours and plain (convert.tflite.gpu_compat: LiteRT's rules), LiteRT latency with XNNPACK on one
thread (median and 90th percentile) of plain fp32, our fp32 and our int8 with their ratios against
the targets (ours fp32 ≤ 1.05× plain; int8 ≤ 0.75× our fp32), achieved multiply-adds per second,
and file sizes. Latencies are taken in interleaved rounds (plain, ours, int8, plain, ...) so that
load from other processes hits every model alike; a round's median is one sample, the reported
figure is the median over rounds. Op counts, partitions and latency do not depend on the weights:
random weights are the default; int8 calibrates on ``--calib`` images, else on generated ones.
The plain path converts the same pixel-input model (mean subtraction in front) without our graph
rewrite, through the same onnx2tf call and TFLite conversion.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import calib
import shvit
from convert.bench.latency import LatencyUnavailable, host_description, measure
from convert.int8.engine import PLAIN_FULL_INT8
from convert.io.scratch import Scratch
from convert.labels import imagenet_labels
from convert.tflite import graphinfo
from convert.tflite.export import export_tflite
from convert.tflite.gpu_compat import gpu_compatibility_of

OURS = ("fp32", "fp16", "int8-weights", "int8")
SHOWN_OPS = ("TRANSPOSE", "RESHAPE", "SPLIT_V", "STRIDED_SLICE", "GATHER", "DEPTHWISE_CONV_2D", "CONV_2D", "BATCH_MATMUL")
TARGET_FP32_RATIO = 1.05
TARGET_INT8_RATIO = 0.75
TARGET_RESHAPE_FRACTION = 1 / 3
TARGET_INT8_PARTITIONS = 3
CALIB_COUNT = 32
LATENCY_ROWS = (("plain fp32", "plain"), ("ours fp32", "fp32"), ("ours int8", "int8"))
GPU_ROWS = (("plain fp32", "plain"), ("ours fp32", "fp32"), ("plain fp16", "plain_fp16"), ("ours fp16", "fp16"))


def convert_all(variant: str, *, weights: str | None, calib_dir: Path | None, tmp: Path) -> dict[str, Any]:
    """Plain fp32 and our four precisions of ``variant``; paths, sizes, MACs."""
    model = shvit.create_model(variant, weights=weights)
    size = model.config.img_size
    deploy = shvit.reparameterize(model)
    labels = imagenet_labels() if model.config.num_classes == 1000 else [f"class_{i}" for i in range(model.config.num_classes)]
    pixel_model = shvit.PixelInput(deploy)
    pixels = (
        calib.load_folder(calib_dir, size=size, count=CALIB_COUNT).pixels
        if calib_dir is not None
        else calib.synthetic_images(CALIB_COUNT, size, seed=0)
    )
    started = time.perf_counter()
    paths = {"plain": tmp / f"{variant}_plain_fp32.tflite", "plain_fp16": tmp / f"{variant}_plain_fp16.tflite"}
    print(f"[{variant}] plain path: fused model → ONNX opset 17 → onnx2tf", file=sys.stderr)
    export_tflite(
        pixel_model,
        {"fp32": paths["plain"], "fp16": paths["plain_fp16"]},
        input_size=size,
        labels=labels,
        rewrite=False,
        log=lambda _: None,
    )
    plain_s = time.perf_counter() - started
    print(f"[{variant}] our export: {', '.join(OURS)}", file=sys.stderr)
    ours = {p: tmp / f"{variant}_{p.replace('-', '_')}.tflite" for p in OURS}
    started = time.perf_counter()
    export_tflite(
        pixel_model,
        ours,
        input_size=size,
        labels=labels,
        name=f"SHViT-{variant.upper()}",
        calib_pixels=pixels,
        int8=PLAIN_FULL_INT8,  # every op int8: the graph-shape figures of the full-integer conversion
        log=lambda _: None,
    )
    paths.update(ours)
    return {
        "variant": variant,
        "input_size": size,
        "macs": shvit.count_macs(deploy, size),
        "paths": paths,
        "convert_s": {"plain": round(plain_s, 1), "ours (4 precisions)": round(time.perf_counter() - started, 1)},
    }


def latencies(paths: dict[str, Path], size: int, *, runs: int, rounds: int, scratch: Scratch) -> dict[str, dict[str, float | str]]:
    samples: dict[str, list[tuple[float, float]]] = {key: [] for _, key in LATENCY_ROWS}
    runtime = ""
    for r in range(rounds):
        for label, key in LATENCY_ROWS:
            print(f"  latency round {r + 1}/{rounds}: {label}", file=sys.stderr)
            try:
                result = measure(
                    "tflite", artifact=paths[key], input_size=size, runs=runs, warmup=max(5, runs // 5), threads=1, scratch=scratch
                )
            except LatencyUnavailable as exc:
                samples[key] = []
                print(f"  {label}: {exc}", file=sys.stderr)
                continue
            samples[key].append((result.median_ms, result.p90_ms))
            runtime = result.runtime
    out: dict[str, dict[str, float | str]] = {}
    for _, key in LATENCY_ROWS:
        if samples[key]:
            arr = np.asarray(samples[key])
            out[key] = {"median_ms": float(np.median(arr[:, 0])), "p90_ms": float(np.median(arr[:, 1])), "runtime": runtime}
    return out


def bench_variant(variant: str, *, weights: str | None, calib_dir: Path | None, runs: int, rounds: int, scratch: Scratch) -> dict[str, Any]:
    row = convert_all(variant, weights=weights, calib_dir=calib_dir, tmp=scratch.folder(f"{variant}-"))
    paths = row["paths"]
    row["ops"] = {
        "plain": graphinfo.op_counts(paths["plain"]),
        "ours fp32": graphinfo.op_counts(paths["fp32"]),
        "ours int8": graphinfo.op_counts(paths["int8"]),
    }
    row["partitions"] = {key: graphinfo.delegation(path).partitions for key, path in paths.items()}
    row["sizes_mb"] = {key: round(path.stat().st_size / 1e6, 2) for key, path in paths.items()}
    row["gpu_delegate"] = {key: gpu_compatibility_of(paths[key]).as_dict() for _, key in GPU_ROWS}
    lat = row["latency"] = latencies(paths, row["input_size"], runs=runs, rounds=rounds, scratch=scratch)
    row["paths"] = {key: str(path) for key, path in paths.items()}
    if {"plain", "fp32", "int8"} <= set(lat):
        plain, ours, int8 = (float(lat[k]["median_ms"]) for k in ("plain", "fp32", "int8"))
        row["ratios"] = {"ours_fp32_vs_plain": ours / plain, "int8_vs_ours_fp32": int8 / ours}
    row["giga_macs_per_s"] = {k: row["macs"] / (float(v["median_ms"]) * 1e-3) / 1e9 for k, v in lat.items()}
    return row


def report(row: dict[str, Any]) -> list[str]:
    v, ops, parts, lat = row["variant"].upper(), row["ops"], row["partitions"], row["latency"]
    lines = [f"SHViT-{v} at {row['input_size']} px, {row['macs'] / 1e6:.0f} M multiply-adds; conversion {row['convert_s']}", ""]
    lines.append(f"  {'op':<20}{'plain fp32':>12}{'ours fp32':>12}{'ours int8':>12}")
    shown = [*list(SHOWN_OPS), "total"]
    for op in shown:
        counts = [sum(c.values()) if op == "total" else c.get(op, 0) for c in (ops["plain"], ops["ours fp32"], ops["ours int8"])]
        lines.append(f"  {op:<20}{counts[0]:>12}{counts[1]:>12}{counts[2]:>12}")
    lines += ["", "  XNNPACK partitions: " + ", ".join(f"{k} {n}" for k, n in parts.items())]
    lines.append("  file sizes (MB):    " + ", ".join(f"{k} {s}" for k, s in row["sizes_mb"].items()))
    gpu = row["gpu_delegate"]
    lines.append(
        "  GPU delegate, ops not supported: "
        + ", ".join(
            f"{label} {gpu[key]['incompatible']} of {gpu[key]['total_ops']}"
            + (f" ({', '.join(gpu[key]['ops'])})" if gpu[key]["ops"] else "")
            for label, key in GPU_ROWS
        )
    )
    lines += ["", f"  LiteRT 1 thread      {'median ms':>10}{'p90 ms':>10}{'G MAC/s':>10}"]
    for label, key in LATENCY_ROWS:
        if key in lat:
            lines.append(
                f"  {label:<20} {float(lat[key]['median_ms']):>10.2f}{float(lat[key]['p90_ms']):>10.2f}{row['giga_macs_per_s'][key]:>10.1f}"
            )
        else:
            lines.append(f"  {label:<20} {'unavailable':>10}")
    lines += ["", "  targets:"]
    checks: list[tuple[str, bool | None, str]] = []
    reshape_plain, reshape_ours = ops["plain"].get("RESHAPE", 0), ops["ours fp32"].get("RESHAPE", 0)
    checks.append(
        (
            "zero TRANSPOSE (fp32)",
            ops["ours fp32"].get("TRANSPOSE", 0) == 0,
            f"{ops['ours fp32'].get('TRANSPOSE', 0)} (plain {ops['plain'].get('TRANSPOSE', 0)})",
        )
    )
    checks.append(
        (
            "RESHAPE ≤ 1/3 of plain",
            reshape_ours <= TARGET_RESHAPE_FRACTION * reshape_plain,
            f"{reshape_ours} vs {reshape_plain} ({reshape_ours / max(reshape_plain, 1):.2f}×)",
        )
    )
    checks.append(("no SPLIT_V", ops["ours fp32"].get("SPLIT_V", 0) == 0, str(ops["ours fp32"].get("SPLIT_V", 0))))
    checks.append(("fp32: one XNNPACK partition", parts["fp32"] == 1, str(parts["fp32"])))
    checks.append(
        (
            "GPU delegate takes every op (ours fp32, fp16)",
            gpu["fp32"]["incompatible"] == gpu["fp16"]["incompatible"] == 0,
            f"{gpu['fp32']['incompatible']}, {gpu['fp16']['incompatible']} ops not supported "
            f"(plain {gpu['plain']['incompatible']}, {gpu['plain_fp16']['incompatible']})",
        )
    )
    checks.append((f"int8: ≤ {TARGET_INT8_PARTITIONS} partitions", parts["int8"] <= TARGET_INT8_PARTITIONS, str(parts["int8"])))
    if "ratios" in row:
        fp32_ratio, int8_ratio = row["ratios"]["ours_fp32_vs_plain"], row["ratios"]["int8_vs_ours_fp32"]
        checks.append((f"ours fp32 ≤ {TARGET_FP32_RATIO}× plain", fp32_ratio <= TARGET_FP32_RATIO, f"{fp32_ratio:.2f}×"))
        checks.append((f"int8 ≤ {TARGET_INT8_RATIO}× ours fp32", int8_ratio <= TARGET_INT8_RATIO, f"{int8_ratio:.2f}×"))
    for name, ok, detail in checks:
        lines.append(f"    {'✓' if ok else '✗'} {name}: {detail}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(shvit.VARIANTS), help="repeatable; default s3")
    parser.add_argument(
        "--weights", default=None, help="checkpoint file (default: random weights; counts and latency do not depend on them)"
    )
    parser.add_argument("--calib", type=Path, default=None, help="images to calibrate int8 on (default: generated)")
    parser.add_argument("--runs", type=int, default=40, help="timed runs per round (after warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved latency rounds")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    variants = args.variant or ["s3"]
    if args.weights and len(variants) > 1:
        parser.error("--weights goes with exactly one --variant")
    print(f"host: {host_description()}", file=sys.stderr)
    rows = []
    with Scratch.open() as scratch:
        for variant in variants:
            row = bench_variant(variant, weights=args.weights, calib_dir=args.calib, runs=args.runs, rounds=args.rounds, scratch=scratch)
            print("\n".join(report(row)), flush=True)
            print(flush=True)
            rows.append(row)
    if args.json:
        args.json.write_text(json.dumps({"host": host_description(), "rows": rows}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
