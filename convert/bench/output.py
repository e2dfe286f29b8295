"""The benchmark's views: a terminal table, CSV and JSON files, and a speed–accuracy chart (PNG).

The chart follows the paper's Figure 1: one line per runtime/precision through the variants, latency
on x (left is faster), top-1 accuracy on y when the images are labelled, else top-1 agreement with
PyTorch (what the y axis shows is written on it).
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from convert.bench.run import EXPORT_FAILED, OURS, REFERENCE, BenchRow
from convert.io.staging import write_atomic
from convert.validate.report import drop, grid, pct, pyplot, with_change

SCHEMA = "shvit-bench/2"
"""2: timed in interleaved rounds; ``speedup_vs_pytorch`` is the median of per-round ratios (1: ratio of overall medians)."""
CSV_FIELDS = (
    "variant",
    "name",
    "kind",
    "target",
    "precision",
    "export",
    "export_detail",
    "artifact",
    "size_bytes",
    "ops",
    "parity",
    "parity_detail",
    "latency_median_ms",
    "latency_p90_ms",
    "latency_mean_ms",
    "latency_min_ms",
    "latency_max_ms",
    "runs",
    "warmup",
    "rounds",
    "latency_round_medians_ms",
    "threads",
    "runtime",
    "latency_note",
    "speedup_vs_pytorch",
    "speedup_min",
    "speedup_max",
    "speedup_rounds",
    "gmacs_per_s",
    "max_abs",
    "max_rel",
    "mean_abs",
    "cosine",
    "psnr_db",
    "top1_agreement",
    "top5_agreement",
    "top1_accuracy",
    "top5_accuracy",
    "top1_drop_pp",
    "top5_drop_pp",
    "images",
)


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f}"


def _ms(row: BenchRow, key: str) -> str:
    return f"{getattr(row.latency, key):.2f}" if row.latency else "-"


def row_record(row: BenchRow) -> dict[str, Any]:
    """One flat record per row (the CSV line; JSON rows hold the same keys; per-round lists are space-separated in the CSV)."""
    lat, chk = row.latency, row.check
    spread = row.speedup_range
    parity = chk.parity if chk else None
    acc = row.accuracy
    record: dict[str, Any] = {
        "variant": row.variant,
        "name": row.name,
        "kind": row.kind,
        "target": row.target,
        "precision": row.precision,
        "export": row.export,
        "export_detail": row.export_detail or None,
        "artifact": str(row.artifact) if row.artifact else None,
        "size_bytes": row.size_bytes,
        "ops": row.ops,
        "parity": row.parity,
        "parity_detail": (chk.detail or None) if chk else (row.not_comparable or None),
        "latency_median_ms": lat.median_ms if lat else None,
        "latency_p90_ms": lat.p90_ms if lat else None,
        "latency_mean_ms": lat.mean_ms if lat else None,
        "latency_min_ms": lat.min_ms if lat else None,
        "latency_max_ms": lat.max_ms if lat else None,
        "runs": lat.runs if lat else None,
        "warmup": lat.warmup if lat else None,
        "rounds": lat.rounds if lat else None,
        "latency_round_medians_ms": list(lat.round_medians_ms) if lat else None,
        "threads": lat.threads if lat else None,
        "runtime": lat.runtime if lat else (chk.runtime if chk and chk.runtime else None),
        "latency_note": row.latency_note or None,
        "speedup_vs_pytorch": row.speedup,
        "speedup_min": spread[0] if spread else None,
        "speedup_max": spread[1] if spread else None,
        "speedup_rounds": list(row.speedup_rounds) if row.speedup_rounds else None,
        "gmacs_per_s": row.macs / lat.median_ms / 1e6 if lat and row.macs else None,
        "max_abs": parity.max_abs if parity else None,
        "max_rel": parity.max_rel if parity else None,
        "mean_abs": parity.mean_abs if parity else None,
        "cosine": parity.cosine if parity else None,
        "psnr_db": parity.psnr_db if parity and math.isfinite(parity.psnr_db) else None,
        "top1_agreement": parity.top1 if parity else None,
        "top5_agreement": parity.top5 if parity else None,
        "top1_accuracy": acc.top1 if acc else None,
        "top5_accuracy": acc.top5 if acc else None,
        "top1_drop_pp": drop(row.reference_accuracy, acc, "top1") if row.kind != REFERENCE else None,
        "top5_drop_pp": drop(row.reference_accuracy, acc, "top5") if row.kind != REFERENCE else None,
        "images": parity.images if parity else (acc.images if acc else None),
    }
    return record


def format_table(rows: Sequence[BenchRow], *, labelled: bool) -> list[str]:
    quality = "acc@1 (Δ pp)" if labelled else "agree@1"
    headers = [
        "variant",
        "model",
        "export",
        "parity",
        "size MB",
        "ops",
        "min ms",
        "median ms",
        "p90 ms",
        "max ms",
        "speed-up",
        quality,
        "cosine",
        "note",
    ]
    lines = []
    for row in rows:
        r = row_record(row)
        if labelled:
            q = with_change(r["top1_accuracy"], r["top1_drop_pp"])
        else:
            q = "100% (ref)" if row.kind == REFERENCE else pct(r["top1_agreement"])
        lines.append(
            [
                row.variant,
                row.name,
                row.export,
                row.parity,
                _mb(row.size_bytes),
                "-" if row.ops is None else str(row.ops),
                _ms(row, "min_ms"),
                _ms(row, "median_ms"),
                _ms(row, "p90_ms"),
                _ms(row, "max_ms"),
                _speedup(row),
                q,
                f"{r['cosine']:.6f}" if r["cosine"] is not None else "-",
                _note(row),
            ]
        )
    gpu = [
        f"SHViT-{row.variant.upper()} {row.name}: {row.check.gpu_delegate.line()}"
        for row in rows
        if row.check is not None and row.check.gpu_delegate is not None
    ]
    return grid(headers, lines) + (["", *gpu] if gpu else [])


def _speedup(row: BenchRow) -> str:
    """``4.82× (4.6–5.0)``: the median per-round ratio and its range over the rounds (the reference: just 1.00×)."""
    if not row.speedup:
        return "-"
    spread = row.speedup_range
    if row.kind == REFERENCE or spread is None or len(row.speedup_rounds) < 2:
        return f"{row.speedup:.2f}×"
    low, high = (f"{x:.1f}" if x >= 1 else f"{x:.2f}" for x in spread)
    return f"{row.speedup:.2f}× ({low}–{high})"


def _note(row: BenchRow) -> str:
    """Why a row lacks a figure or did not pass, in the order a user needs it."""
    parts = []
    if row.export == EXPORT_FAILED or (row.kind == OURS and row.export_detail):
        parts.append(row.export_detail)
    if row.check is not None and not row.check.passed:
        parts.append(row.check.detail)
    parts += [row.not_comparable, row.latency_note]
    return "; ".join(p for p in parts if p)


def write_csv(rows: Sequence[BenchRow], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: ("" if v is None else " ".join(f"{x:.6g}" for x in v) if isinstance(v, list) else v) for k, v in row_record(row).items()}
        )
    write_atomic(path, buffer.getvalue())


def write_json(rows: Sequence[BenchRow], path: Path, *, settings: dict[str, Any], host: str) -> None:
    document = {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host,
        "settings": settings,
        "rows": [row_record(row) for row in rows],
    }
    write_atomic(path, json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")


def draw_chart(rows: Sequence[BenchRow], path: Path, *, labelled: bool, host: str, threads: int) -> None:
    """Speed–accuracy chart in the spirit of the paper's Figure 1, one line per runtime/precision."""
    plt = pyplot()
    series: dict[str, list[tuple[BenchRow, float, float]]] = {}  # the rows drawn: (row, median ms, top-1 %)
    for row in rows:
        value = (
            row.accuracy.top1
            if labelled and row.accuracy
            else (1.0 if row.kind == REFERENCE else (row.check.parity.top1 if row.check and row.check.parity else None))
        )
        if row.latency is not None and value is not None:
            series.setdefault(row.name, []).append((row, row.latency.median_ms, 100 * value))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = "o^sDvP*Xh<>"
    for i, (name, members) in enumerate(sorted(series.items(), key=lambda kv: (kv[0] != "pytorch (reference)", kv[0]))):
        xs = [x for _, x, _ in members]
        ys = [y for _, _, y in members]
        style = "--" if members[0][0].kind != "ours" else "-"
        ax.plot(xs, ys, style, marker=markers[i % len(markers)], label=name, linewidth=1.5, markersize=7)
        for m, x, y in members:
            ax.annotate(m.variant.upper(), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    missing = sorted({f"{r.name}: {r.export if r.artifact is None else r.latency_note.split(' (')[0]}" for r in rows if r.latency is None})
    times = [x for members in series.values() for _, x, _ in members]
    if times and max(times) / min(times) > 10:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"median latency per image, ms (batch 1, {threads} thread{'s' if threads != 1 else ''}) — left is faster")
    ax.set_ylabel("top-1 accuracy on the labelled images, %" if labelled else "top-1 agreement with PyTorch, %")
    ax.set_title(f"SHViT speed–accuracy on the host CPU\n{host}", fontsize=10)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=8, loc="best")
    footnote = textwrap.wrap("Not plotted: " + "; ".join(missing), 150) if missing else []
    if footnote:
        fig.text(0.01, 0.01, "\n".join(footnote[:3]), fontsize=7, color="#666")
    fig.tight_layout(rect=(0, 0.025 * (len(footnote[:3]) + 0.5) if footnote else 0, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
