"""onnx2tf's two TFLite back ends on SHViT: ``tf_converter`` (what we ship) vs ``flatbuffer_direct``.

    python benchmarks/bench_tflite_backends.py [--variant s1] [--variant s3 ...] [--images 8]
                                               [--runs 30] [--rounds 3] [--json results.json]

onnx2tf 2.x defaults to ``tflite_backend="flatbuffer_direct"``, which writes float32 and float16
``.tflite`` files itself, with no TensorFlow; our export (convert/tflite/export.py) asks for
``tf_converter`` and converts the returned Keras model with TFLiteConverter. This script measures
whether fp32/fp16 could move to the direct writer. Per variant (random weights, seeded, BatchNorm
statistics recomputed on generated images so logits depend on the image): our export (fp32, fp16)
and the same TFLite-friendly ONNX (``tflite_friendly`` + ``export_onnx``, opset 17, batch 1)
through ``onnx2tf.convert(tflite_backend="flatbuffer_direct")`` in a child process (TensorFlow and
onnx2tf never load here). Reported: op counts, XNNPACK partitions, file sizes, input/output
tensors (layout!), signatures and metadata, conversion time, agreement of the logits on generated
images (direct fp32 vs our fp32, and every file vs PyTorch; an NCHW input gets NCHW pixels), and
LiteRT latency on one thread in interleaved rounds (ours fp32, direct fp32, ours fp32, ...): the
per-round medians, the direct/ours ratio per round and its median. A failed direct conversion is
recorded with its error line; the rest of the row still runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from convert.bench.latency import LatencyUnavailable, host_description, measure
from convert.io.child import ChildFailure, run_isolated
from convert.io.scratch import Scratch
from convert.tflite import graphinfo

SHOWN_OPS = (
    "TRANSPOSE",
    "RESHAPE",
    "SPLIT_V",
    "STRIDED_SLICE",
    "GATHER",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "BATCH_MATMUL",
    "FULLY_CONNECTED",
    "MEAN",
    "SOFTMAX",
    "DEQUANTIZE",
)
FILES = (("ours fp32", "tf_fp32"), ("direct fp32", "direct_fp32"), ("ours fp16", "tf_fp16"), ("direct fp16", "direct_fp16"))
LATENCY_ROWS = (("ours fp32", "tf_fp32"), ("direct fp32", "direct_fp32"))
IMAGE_SEED = 7
CHILD_TIMEOUT_S = 1800.0


# ---------------------------------------------------------------- conversions


def build(variant: str) -> tuple[Any, Any, int, list[str]]:
    """Image-dependent deploy model of ``variant`` (seeded), its pixel-input form, input size, labels."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_int8 lives next to this file
    from bench_int8 import image_dependent

    import shvit

    _, deploy, size = image_dependent(variant)
    classes = deploy.config.num_classes
    return deploy, shvit.PixelInput(deploy).eval(), size, [f"class_{i}" for i in range(classes)]


def export_ours(pixel_model: Any, size: int, labels: list[str], variant: str, tmp: Path, scratch: Scratch) -> tuple[dict[str, Path], float]:
    from convert.tflite.export import export_tflite

    paths = {"tf_fp32": tmp / f"{variant}_tf_fp32.tflite", "tf_fp16": tmp / f"{variant}_tf_fp16.tflite"}
    started = time.perf_counter()
    export_tflite(
        pixel_model,
        {"fp32": paths["tf_fp32"], "fp16": paths["tf_fp16"]},
        input_size=size,
        labels=labels,
        name=f"SHViT-{variant.upper()}",
        scratch=scratch,
        log=lambda _: None,
    )
    return paths, time.perf_counter() - started


def export_direct(pixel_model: Any, size: int, variant: str, tmp: Path, scratch: Scratch) -> dict[str, Any]:
    """The TFLite-friendly ONNX that export_tflite converts, through flatbuffer_direct in a child."""
    from convert.onnx.export import export_onnx
    from convert.tflite.graph import tflite_friendly
    from convert.tflite.onnx2tf_runner import tool_path

    onnx_path = tmp / f"{variant}_friendly.onnx"
    started = time.perf_counter()
    export_onnx(tflite_friendly(pixel_model), onnx_path, input_size=size, opset=17, dynamic_batch=False)
    onnx_s = time.perf_counter() - started
    work, out, log_path = tmp / "direct-work", tmp / "direct-out", tmp / "direct-onnx2tf.log"
    work.mkdir()
    env = {"PATH": tool_path(), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **scratch.child_env()}
    started = time.perf_counter()
    try:
        result: dict[str, Any] = run_isolated(
            "bench_tflite_backends:direct_child",
            args={"onnx": onnx_path, "out": out},
            env=env,
            cwd=work,
            log_path=log_path,
            timeout_s=CHILD_TIMEOUT_S,
            offline=False,  # the child records attempts itself, as a figure of the row
        )
    except ChildFailure as exc:
        result = {"error": exc.describe("the onnx2tf child", "") or _last_line(log_path)}
    child_s = time.perf_counter() - started
    record: dict[str, Any] = {"onnx_export_s": round(onnx_s, 1), "child_s": round(child_s, 1), "log": str(log_path), **result}
    if record.get("error"):
        record["log"] = str(scratch.keep(log_path, prefix="bench-direct-"))  # outlives the scratch folder
    else:
        record.pop("log")  # removed with the scratch folder
    if not record.get("error"):
        for precision in ("float32", "float16"):
            found = sorted(out.glob(f"*_{precision}.tflite"))
            if found:
                record[f"direct_fp{precision[-2:]}"] = found[0]
            else:
                record.setdefault("error", f"no *_{precision}.tflite in {sorted(p.name for p in out.iterdir()) if out.exists() else []}")
    return record


def _last_line(log_path: Path) -> str:
    from convert.tflite.onnx2tf_runner import _last_error

    return _last_error(log_path)


def direct_child(*, onnx: str, out: str) -> dict[str, Any]:
    """In the child: one onnx2tf.convert with the direct back end; its figures, or its error line."""
    from convert.io.child import block_network

    attempts: list[str] = []
    block_network(attempts)
    result: dict[str, Any] = {}
    try:
        import onnx2tf

        started = time.perf_counter()
        onnx2tf.convert(
            input_onnx_file_path=onnx,
            output_folder_path=out,
            tflite_backend="flatbuffer_direct",
            output_signaturedefs=True,
            non_verbose=True,
        )
        result = {"onnx2tf_s": round(time.perf_counter() - started, 1), "onnx2tf_version": onnx2tf.__version__}
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        result = {"error": f"{type(exc).__name__}: {first}"[:300]}
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    if attempts:
        result["network_attempts"] = attempts
    return result


# ---------------------------------------------------------------- what the files hold


def graph_facts(path: Path) -> dict[str, Any]:
    """Op counts, input/output tensors, signatures and metadata names, read from the flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    signatures = []
    for i in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(i)
        signatures.append(
            {
                "key": (sig.SignatureKey() or b"").decode(),
                "inputs": [(sig.Inputs(j).Name() or b"").decode() for j in range(sig.InputsLength())],
                "outputs": [(sig.Outputs(j).Name() or b"").decode() for j in range(sig.OutputsLength())],
            }
        )
    inp, out = graphinfo.io_tensors(data)
    return {
        "ops": graphinfo.op_counts(data),
        "transposes": _transposes(model),
        "input": {"name": inp.name, "shape": list(inp.shape), "dtype": inp.dtype},
        "output": {"name": out.name, "shape": list(out.shape), "dtype": out.dtype},
        "signatures": signatures,
        "metadata": [(model.Metadata(i).Name() or b"").decode() for i in range(model.MetadataLength())],
        "size_mb": round(len(data) / 1e6, 3),
    }


def _transposes(model: Any) -> dict[str, int]:
    """TRANSPOSE ops by "producer op perm", e.g. ``{"BATCH_MATMUL [0, 3, 1, 2]": 9}``: where the layout changes sit."""
    from collections import Counter

    names, graph = graphinfo.op_name_table(model), model.Subgraphs(0)
    producer = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        for j in range(op.OutputsLength()):
            producer[op.Outputs(j)] = names[op.OpcodeIndex()]
    found: Counter[str] = Counter()
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if names[op.OpcodeIndex()] != "TRANSPOSE":
            continue
        buffer = model.Buffers(graph.Tensors(op.Inputs(1)).Buffer())
        perm = buffer.DataAsNumpy().view(np.int32).tolist() if buffer.DataLength() else "?"
        found[f"{producer.get(op.Inputs(0), 'input')} {perm}"] += 1
    return dict(found.most_common())


def logits_of(paths: dict[str, Path], pixels: np.ndarray, scratch: Scratch) -> dict[str, np.ndarray | str]:
    """LiteRT logits of every file on uint8 NHWC ``pixels``, in one child (an NCHW input gets transposed pixels);
    a file that fails maps to its error line."""
    try:
        found: dict[str, np.ndarray | str] = run_isolated(
            "bench_tflite_backends:logits_child",
            args={"pixels": pixels, "models": paths},
            env=scratch.child_env(),
            timeout_s=CHILD_TIMEOUT_S,
        )
    except ChildFailure as exc:
        return dict.fromkeys(paths, exc.describe("LiteRT", "while running the models"))
    return found


def logits_child(*, pixels: np.ndarray, models: dict[str, str]) -> dict[str, np.ndarray | str]:
    from convert.tflite.runtime import from_output, interpreter

    out: dict[str, np.ndarray | str] = {}
    for key, model in models.items():
        try:
            it, _ = interpreter(Path(model), threads=1)
            detail, out_detail = it.get_input_details()[0], it.get_output_details()[0]
            images = pixels if list(detail["shape"][1:]) == list(pixels.shape[1:]) else pixels.transpose(0, 3, 1, 2)  # NCHW input
            rows = []
            for image in images:
                it.set_tensor(detail["index"], np.ascontiguousarray(image[None], dtype=np.float32))
                it.invoke()
                rows.append(from_output(it.get_tensor(out_detail["index"]), out_detail))
            out[key] = np.concatenate(rows)
        except Exception as exc:
            out[key] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return out


def agreement(actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """max |Δ| over the expected logits' scale, and the lowest per-image cosine."""
    a, e = np.asarray(actual, np.float64).reshape(len(actual), -1), np.asarray(expected, np.float64).reshape(len(expected), -1)
    scale = float(np.abs(e).max()) or 1.0
    cos = (a * e).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(e, axis=1) + 1e-30)
    return {
        "max_abs_rel": float(np.abs(a - e).max()) / scale,
        "min_cosine": float(cos.min()),
        "top1_agree": float((a.argmax(1) == e.argmax(1)).mean()),
    }


# ---------------------------------------------------------------- latency


def latencies(paths: dict[str, Path], size: int, *, runs: int, rounds: int, scratch: Scratch) -> dict[str, Any]:
    rows = [(label, key) for label, key in LATENCY_ROWS if key in paths]
    medians: dict[str, list[float]] = {key: [] for _, key in rows}
    minima: dict[str, list[float]] = {key: [] for _, key in rows}
    errors: dict[str, str] = {}
    for r in range(rounds):
        for label, key in rows:
            if key in errors:
                continue
            print(f"  latency round {r + 1}/{rounds}: {label}", file=sys.stderr)
            try:
                result = measure(
                    "tflite", artifact=paths[key], input_size=size, runs=runs, warmup=max(5, runs // 5), threads=1, scratch=scratch
                )
            except LatencyUnavailable as exc:
                errors[key] = str(exc)
                continue
            medians[key].append(result.median_ms)
            minima[key].append(result.min_ms)
    out: dict[str, Any] = {"per_round_median_ms": medians, "per_round_min_ms": minima, "errors": errors}
    a, b = medians.get("tf_fp32", []), medians.get("direct_fp32", [])
    if a and len(a) == len(b):
        ratios = [d / t for t, d in zip(a, b)]
        min_ratios = [d / t for t, d in zip(minima["tf_fp32"], minima["direct_fp32"])]
        out.update(
            ratio_per_round=ratios,
            ratio_median=float(np.median(ratios)),
            min_ratio_per_round=min_ratios,
            min_ratio_median=float(np.median(min_ratios)),
        )
    out["median_ms"] = {key: float(np.median(v)) for key, v in medians.items() if v}
    return out


# ---------------------------------------------------------------- one variant


def bench_variant(variant: str, *, images: int, runs: int, rounds: int, scratch: Scratch) -> dict[str, Any]:
    import torch

    import calib
    import shvit

    tmp = scratch.folder(f"{variant}-")
    print(f"[{variant}] building the image-dependent deploy model", file=sys.stderr)
    deploy, pixel_model, size, labels = build(variant)
    row: dict[str, Any] = {"variant": variant, "input_size": size, "macs": shvit.count_macs(deploy, size)}
    print(f"[{variant}] ours: export_tflite (tf_converter) fp32 + fp16", file=sys.stderr)
    paths, ours_s = export_ours(pixel_model, size, labels, variant, tmp, scratch)
    print(f"[{variant}] direct: tflite_friendly ONNX → onnx2tf flatbuffer_direct (child)", file=sys.stderr)
    direct = export_direct(pixel_model, size, variant, tmp, scratch)
    paths.update({k: direct.pop(k) for k in ("direct_fp32", "direct_fp16") if k in direct})
    row["direct"] = direct
    row["convert_s"] = {
        "ours fp32+fp16 (ONNX, onnx2tf, TFLiteConverter ×2, metadata)": round(ours_s, 1),
        "direct fp32+fp16 (ONNX + child)": round(direct["onnx_export_s"] + direct["child_s"], 1),
    }
    if direct.get("error"):
        print(f"[{variant}] flatbuffer_direct failed: {direct['error']}", file=sys.stderr)
    row["graphs"] = {key: graph_facts(path) for key, path in paths.items()}
    row["partitions"] = {}
    for key, path in paths.items():
        try:
            row["partitions"][key] = graphinfo.delegation(path).partitions
        except Exception as exc:
            row["partitions"][key] = f"error: {exc}"
    pixels = calib.synthetic_images(images, size, seed=IMAGE_SEED)
    with torch.no_grad():
        reference = pixel_model(torch.from_numpy(pixels).permute(0, 3, 1, 2).float()).numpy()
    logits = logits_of(paths, pixels, scratch)
    row["agreement"] = {
        f"{key} vs pytorch": {"error": value} if isinstance(value, str) else agreement(value, reference) for key, value in logits.items()
    }
    for a, b in (("direct_fp32", "tf_fp32"), ("direct_fp16", "tf_fp16")):
        if not isinstance(logits.get(a, ""), str) and not isinstance(logits.get(b, ""), str):
            row["agreement"][f"{a} vs {b}"] = agreement(logits[a], logits[b])
    row["latency"] = latencies(paths, size, runs=runs, rounds=rounds, scratch=scratch)
    row["paths"] = {key: str(path) for key, path in paths.items()}
    return row


def report(row: dict[str, Any]) -> list[str]:
    graphs, parts, keys = row["graphs"], row["partitions"], [(label, key) for label, key in FILES if key in row["graphs"]]
    lines = [
        f"SHViT-{row['variant'].upper()} at {row['input_size']} px, {row['macs'] / 1e6:.0f} M MACs; "
        f"conversion s: {', '.join(f'{k} {v}' for k, v in row['convert_s'].items())}"
    ]
    if row["direct"].get("error"):
        lines.append(f"  flatbuffer_direct FAILED: {row['direct']['error']}")
    lines.append(f"  {'':<20}" + "".join(f"{label:>13}" for label, _ in keys))
    for op in (*SHOWN_OPS, "total"):
        counts = [sum(graphs[k]["ops"].values()) if op == "total" else graphs[k]["ops"].get(op, 0) for _, k in keys]
        lines.append(f"  {op:<20}" + "".join(f"{c:>13}" for c in counts))
    others = sorted({op for _, k in keys for op in graphs[k]["ops"]} - set(SHOWN_OPS))
    for op in others:
        lines.append(f"  {op:<20}" + "".join(f"{graphs[k]['ops'].get(op, 0):>13}" for _, k in keys))
    lines.append(
        f"  {'XNNPACK partitions':<20}" + "".join(f"{'load error' if isinstance(parts.get(k), str) else parts.get(k):>13}" for _, k in keys)
    )
    lines.append(f"  {'size MB':<20}" + "".join(f"{graphs[k]['size_mb']:>13.2f}" for _, k in keys))
    for _, k in keys:
        g = graphs[k]
        lines.append(
            f"  {k:<12} in {g['input']['name']!r} {g['input']['dtype']}{g['input']['shape']}, "
            f"out {g['output']['name']!r} {g['output']['dtype']}{g['output']['shape']}; "
            f"signatures {[(s['key'], s['inputs'], s['outputs']) for s in g['signatures']]}; metadata {g['metadata']}"
        )
    for _, k in keys:
        if graphs[k]["transposes"]:
            lines.append(f"  {k:<12} TRANSPOSE after: {graphs[k]['transposes']}")
    for k, p in parts.items():
        if isinstance(p, str):
            lines.append(f"  {k:<12} XNNPACK: {p[:200]}")
    d = row["direct"]
    lines.append(
        f"  direct child: onnx2tf.convert {d.get('onnx2tf_s')} s, child {d['child_s']} s, "
        f"TensorFlow imported: {d.get('tensorflow_imported')}, onnx2tf {d.get('onnx2tf_version')}"
    )
    for name, a in row["agreement"].items():
        lines.append(
            f"  {name:<26} "
            + (
                a["error"]
                if "error" in a
                else f"max|Δ|/scale {a['max_abs_rel']:.2e}  min cos {a['min_cosine']:.6f}  top-1 {a['top1_agree']:.2f}"
            )
        )
    lat = row["latency"]
    for key, values in lat["per_round_median_ms"].items():
        if values:
            lines.append(f"  latency {key:<12} per-round median ms: {', '.join(f'{v:.2f}' for v in values)}")
    for key, err in lat["errors"].items():
        lines.append(f"  latency {key:<12} unavailable: {err}")
    if "ratio_median" in lat:
        lines.append(
            f"  direct/ours fp32 per round (medians): {', '.join(f'{r:.3f}' for r in lat['ratio_per_round'])}; "
            f"median {lat['ratio_median']:.3f}"
        )
        lines.append(
            f"  direct/ours fp32 per round (minima):  {', '.join(f'{r:.3f}' for r in lat['min_ratio_per_round'])}; "
            f"median {lat['min_ratio_median']:.3f}"
        )
    return lines


def verdict(rows: list[dict[str, Any]]) -> str:
    parts = []
    for row in rows:
        v = row["variant"]
        if row["direct"].get("error") or "direct_fp32" not in row["graphs"]:
            parts.append(f"{v}: flatbuffer_direct fails ({row['direct'].get('error', 'no file')}) → keep tf_converter")
            continue
        ours, direct = row["graphs"]["tf_fp32"], row["graphs"]["direct_fp32"]
        ratio = row["latency"].get("ratio_median")
        agree = row["agreement"].get("direct_fp32 vs tf_fp32", {})
        nhwc = direct["input"]["shape"] == ours["input"]["shape"]
        spread = row["latency"].get("ratio_per_round", [])
        faster = bool(spread) and max(spread) < 0.97  # every round: a load spike must not decide
        same = bool(spread) and min(spread) <= 1.03
        same_parts = row["partitions"].get("direct_fp32") == row["partitions"].get("tf_fp32")
        ok_num = agree.get("min_cosine", 0) > 0.9999
        parts.append(
            f"{v}: direct/ours latency {ratio if ratio is None else f'{ratio:.3f}'}, ops {sum(direct['ops'].values())} vs "
            f"{sum(ours['ops'].values())}, partitions {row['partitions'].get('direct_fp32')} vs {row['partitions'].get('tf_fp32')}, "
            f"input {'NHWC same' if nhwc else 'layout differs ' + str(direct['input']['shape'])}, "
            f"cos {agree.get('min_cosine', float('nan')):.6f} → "
            + (
                "fp32 via flatbuffer_direct viable"
                + (" and faster in every round" if faster else f" (speed indistinguishable: rounds {min(spread):.2f}-{max(spread):.2f})")
                if ok_num and same and same_parts
                else "keep tf_converter for fp32"
            )
            + (
                "; direct fp16 "
                + ("loads" if isinstance(row["partitions"].get("direct_fp16"), int) else "does not load in LiteRT")
                + f" ({direct_fp16_io(row)})"
            )
        )
    return "VERDICT: " + "; ".join(parts)


def direct_fp16_io(row: dict[str, Any]) -> str:
    g = row["graphs"].get("direct_fp16")
    return "no file" if g is None else f"input {g['input']['dtype']}, output {g['output']['dtype']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=["s1", "s2", "s3", "s4"], help="repeatable; default s1")
    parser.add_argument("--images", type=int, default=8, help="generated images for the agreement check")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per latency round (after warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved latency rounds")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    print(f"host: {host_description()}", file=sys.stderr)
    started = time.perf_counter()
    rows = []
    with Scratch.open() as scratch:
        for variant in args.variant or ["s1"]:
            row_started = time.perf_counter()
            row = bench_variant(variant, images=args.images, runs=args.runs, rounds=args.rounds, scratch=scratch)
            row["wall_s"] = round(time.perf_counter() - row_started, 1)
            rows.append(row)
            if args.json:  # after every variant: a later failure keeps the earlier rows
                args.json.write_text(
                    json.dumps({"host": host_description(), "rows": rows, "verdict": verdict(rows)}, indent=2, default=str) + "\n"
                )
            print("\n".join(report(row)) + f"\n  ({row['wall_s']} s)\n", flush=True)
    print(verdict(rows) + f"\ntotal {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
