"""The checker's results and their three views: terminal table, JSON report, self-contained HTML page.

The HTML page embeds its chart as inline SVG (text kept as text), so it opens in any browser from
a mail attachment or CI artifact with no other file beside it.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from convert.errors import ConvertError
from convert.io.staging import write_atomic
from convert.parity import ParityReport, Tolerance
from convert.validate.accuracy import Accuracy

SCHEMA = "shvit-check/1"
PASS, FAIL, CRASH, MISMATCH, ERROR = "pass", "fail", "crash", "mismatch", "error"
STATUSES = (PASS, FAIL, CRASH, MISMATCH, ERROR)


@dataclass
class ArtifactResult:
    """One artifact's verdict; ``reason`` is the one line a user reads when it did not pass."""

    path: Path
    target: str
    precision: str | None
    precision_source: str
    status: str
    reason: str = ""
    runtime: str = ""
    parity: ParityReport | None = None
    tolerance: Tolerance | None = None
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    accuracy: Accuracy | None = None
    size_bytes: int | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    name: str = ""
    gpu_delegate: Any = None
    """TFLite: :class:`convert.tflite.gpu_compat.GpuCompatibility`, the ops the LiteRT GPU delegate would not take."""

    def __post_init__(self) -> None:
        self.name = self.name or self.path.name

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def detail(self) -> str:
        if self.reason:
            return self.reason
        return "; ".join(f"{name} {text}{'' if ok else ' ✗'}" for name, ok, text in self.checks)


@dataclass
class CheckReport:
    reference: dict[str, Any]
    images: dict[str, Any]
    reference_accuracy: Accuracy | None
    artifacts: list[ArtifactResult]
    versions: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    per_layer: list[Any] = field(default_factory=list)
    """``shvit-check --per-layer``: :class:`convert.validate.per_layer.PerLayerReport` per int8 artifact."""

    @property
    def passed(self) -> bool:
        return bool(self.artifacts) and all(a.passed for a in self.artifacts)

    @property
    def failed(self) -> list[ArtifactResult]:
        return [a for a in self.artifacts if not a.passed]

    def verdict(self) -> str:
        n = len(self.artifacts)
        if self.passed:
            return f"✓ all {n} artifact{'s' if n != 1 else ''} within tolerance"
        return f"✗ {len(self.failed)} of {n} artifact{'s' if n != 1 else ''} failed: " + ", ".join(
            f"{a.name} ({a.status})" for a in self.failed
        )


def pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def drop(reference: Accuracy | None, candidate: Accuracy | None, key: str) -> float | None:
    """Accuracy lost against PyTorch, in percentage points (negative: the artifact did better)."""
    if reference is None or candidate is None or not candidate.images:
        return None
    return 100 * (getattr(reference, key) - getattr(candidate, key))


def grid(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces; the last column is never padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths)] + [str(row[-1])]
        lines.append("  ".join(cells).rstrip())
    return lines


def with_change(value: float | None, lost: float | None) -> str:
    """``89.6% (-1.0)``: an accuracy and its change against PyTorch in points (negative: lost)."""
    return pct(value) + ("" if value is None or lost is None else f" ({0.0 - lost:+.1f})")


def _acc(reference: Accuracy | None, candidate: Accuracy | None, key: str) -> str:
    if candidate is None or not candidate.images:
        return "-"
    return with_change(getattr(candidate, key), drop(reference, candidate, key))


def _columns(report: CheckReport) -> tuple[list[str], list[list[str]]]:
    ref = report.reference_accuracy
    headers = ["artifact", "precision", "status", "max|Δ|/scale", "mean|Δ|/scale", "cosine", "PSNR dB", "agree@1", "agree@5"]
    if ref is not None:
        headers += ["acc@1 (Δ pp)", "acc@5 (Δ pp)"]
    headers.append("detail")
    rows = [
        ["PyTorch (reference)", "fp32", "ref", "-", "-", "-", "-", "-", "-"]
        + ([pct(ref.top1), pct(ref.top5)] if ref else [])
        + [report.reference.get("runtime", "")]
    ]
    for a in report.artifacts:
        p = a.parity
        row = [a.name, a.precision or "?", a.status.upper()]
        row += (
            [
                f"{p.max_rel:.2e}",
                f"{p.mean_abs / p.scale:.2e}",
                f"{p.cosine:.6f}",
                "inf" if math.isinf(p.psnr_db) else f"{p.psnr_db:.1f}",
                pct(p.top1),
                pct(p.top5),
            ]
            if p
            else ["-"] * 6
        )
        if ref is not None:
            row += [_acc(ref, a.accuracy, "top1"), _acc(ref, a.accuracy, "top5")]
        rows.append([*row, a.detail])
    return headers, rows


def format_table(report: CheckReport) -> list[str]:
    """The terminal view: context lines, the table, runtimes, notes and the verdict."""
    ref, img = report.reference, report.images
    lines = [
        f"Reference: {display_name(ref['variant'])} at {ref['input_size']}×{ref['input_size']}, {ref['num_classes']} classes, "
        f"weights {ref['weights']}",
        f"Images: {img['description']}",
    ]
    if img.get("labels"):
        lines.append(f"Labels: {img['labels']} ({img['mapping']}; {img['labelled']} images with a known class)")
    lines += ["", *grid(*_columns(report)), ""]
    lines += [f"  {line}" for line in _footnotes(report)]
    lines.append(report.verdict())
    return lines


def _footnotes(report: CheckReport) -> list[str]:
    """Where each artifact ran and anything said about it (inferred precision, unreadable graph)."""
    lines = []
    for a in report.artifacts:
        if a.runtime:
            lines.append(f"{a.name}: ran in {a.runtime}, {a.seconds:.1f} s")
        if a.gpu_delegate is not None:
            lines.append(f"{a.name}: {a.gpu_delegate.line()}")
        lines += [f"{a.name}: {note}" for note in a.notes]
    return lines


def as_json(report: CheckReport) -> dict[str, Any]:
    """The JSON report (schema ``shvit-check/1``); every number a user could want, no formatting."""
    ref = report.reference_accuracy

    def artifact(a: ArtifactResult) -> dict[str, Any]:
        acc = None
        if a.accuracy is not None:
            acc = _finite(
                {**a.accuracy.as_dict(), "top1_drop_pp": drop(ref, a.accuracy, "top1"), "top5_drop_pp": drop(ref, a.accuracy, "top5")}
            )
        return {
            "path": str(a.path),
            "name": a.name,
            "target": a.target,
            "precision": a.precision,
            "precision_source": a.precision_source,
            "status": a.status,
            "passed": a.passed,
            "reason": a.reason or None,
            "runtime": a.runtime or None,
            "size_bytes": a.size_bytes,
            "seconds": round(a.seconds, 3),
            "tolerance": {k: v for k, v in vars(a.tolerance).items() if v is not None} if a.tolerance else None,
            "checks": [{"name": n, "passed": ok, "detail": d} for n, ok, d in a.checks],
            "parity": _finite(a.parity.as_dict()) if a.parity else None,
            "accuracy": acc,
            "notes": a.notes,
            "gpu_delegate": a.gpu_delegate.as_dict() if a.gpu_delegate is not None else None,
        }

    counts = {status: sum(a.status == status for a in report.artifacts) for status in STATUSES}
    return {
        "schema": SCHEMA,
        "created": report.created,
        "passed": report.passed,
        "summary": counts,
        "reference": {**report.reference, "accuracy": _finite(ref.as_dict()) if ref else None},
        "images": report.images,
        "artifacts": [artifact(a) for a in report.artifacts],
        "versions": report.versions,
        **({"per_layer": [p.as_dict() for p in report.per_layer]} if report.per_layer else {}),
    }


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """JSON has no infinity: an exact match's PSNR becomes null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def check_output_path(path: Path, *, option: str) -> None:
    """Fail before any slow work when a report can never be written to ``path``."""
    from convert.io.staging import output_dir_problem

    if path.is_dir():
        raise ConvertError(f"{option} {path} is a folder: pass a file name, e.g. {path / 'report'}{path.suffix or '.json'}")
    problem = output_dir_problem(path.parent)
    if problem:
        raise ConvertError(f"cannot write {option} {path}: its folder {path.parent} {problem}; pass a path in a writable folder")


def write_json(report: CheckReport, path: Path) -> None:
    write_atomic(path, json.dumps(as_json(report), indent=2, ensure_ascii=False) + "\n")


def display_name(variant: object) -> str:
    """``SHViT-S3``; ``SHViT`` for shapes read from a checkpoint (variant ``auto``)."""
    return "SHViT" if str(variant) in ("auto", "None", "") else f"SHViT-{str(variant).upper()}"


def pyplot() -> Any:
    """matplotlib without a display (Agg), imported only when a chart is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def chart_figure(report: CheckReport) -> Any:
    """Per artifact: max |Δ| and 1 − cosine (log scales, tolerances as ◆) and agreement/accuracy bars."""
    plt = pyplot()
    names = [a.name for a in report.artifacts]
    ys = list(range(len(names)))
    floor = 1e-9
    fig, (err_ax, cos_ax, agr_ax) = plt.subplots(
        1, 3, figsize=(13, 1.5 + 0.5 * max(len(names), 1)), sharey=True, gridspec_kw={"width_ratios": [1, 1, 1.2]}
    )
    for y, a in zip(ys, report.artifacts):
        colour = "#2e7d32" if a.passed else "#c62828"
        if a.parity is None:
            for ax, x in ((err_ax, 2 * floor), (cos_ax, 2 * floor), (agr_ax, 1)):
                ax.text(x, y, a.status, va="center", color=colour)
            continue
        err_ax.barh(y, max(a.parity.max_rel, floor), color=colour, height=0.4)
        err_ax.plot([max(a.parity.mean_abs / a.parity.scale, floor)], [y], "k|", markersize=12)
        cos_ax.barh(y, max(1 - a.parity.cosine, floor), color=colour, height=0.4)
        tol = a.tolerance
        if tol is not None and tol.max_rel is not None:
            err_ax.plot([tol.max_rel], [y], "D", color="#555", markersize=5, zorder=3, label="tolerance")
        if tol is not None and tol.cosine is not None:
            cos_ax.plot([1 - tol.cosine], [y], "D", color="#555", markersize=5, zorder=3, label="tolerance")
        bars = [("top-1 agreement", a.parity.top1, -0.22, "#1565c0"), ("top-5 agreement", a.parity.top5, 0.0, "#90caf9")]
        if a.accuracy is not None and a.accuracy.images:
            bars.append(("top-1 accuracy", a.accuracy.top1, 0.22, "#ef6c00"))
        for label, value, offset, c in bars:
            agr_ax.barh(y + offset, 100 * value, height=0.2, color=c, label=label)
    for ax, label in ((err_ax, "max |Δ| / logit scale (bar), mean (tick)"), (cos_ax, "1 − cosine similarity")):
        ax.set_xscale("log")
        ax.set_xlim(floor, 1)
        ax.set_xlabel(label)
    err_ax.set_yticks(ys, names)
    err_ax.set_ylim(len(names) - 0.5, -0.5)
    agr_ax.set_xlim(0, 105)
    agr_ax.set_xlabel("% of images")
    if report.reference_accuracy is not None:
        agr_ax.axvline(100 * report.reference_accuracy.top1, color="#ef6c00", linestyle="--", linewidth=1, label="PyTorch top-1 accuracy")
    legend: dict[str, Any] = {}
    for ax in (err_ax, cos_ax, agr_ax):
        handles, labels = ax.get_legend_handles_labels()
        legend.update(zip(labels, handles))
    if legend:
        agr_ax.legend(legend.values(), legend.keys(), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.suptitle("Parity with PyTorch per artifact (green: within tolerance, red: not; lower error is better)")
    fig.tight_layout()
    return fig


def chart_svg(report: CheckReport) -> str:
    """The chart as an inline ``<svg>`` element, its text kept as text (searchable, crisp)."""
    plt = pyplot()

    with plt.rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig = chart_figure(report)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
        plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.text{text-align:left}tr.pass td.status{color:#2e7d32;font-weight:bold}
tr.fail td.status,tr.crash td.status,tr.mismatch td.status,tr.error td.status{color:#c62828;font-weight:bold}
.verdict{font-size:1.2em;font-weight:bold}.verdict.pass{color:#2e7d32}.verdict.fail{color:#c62828}
svg{max-width:100%;height:auto}footer{margin-top:2em;color:#777;font-size:12px}
"""


def render_html(report: CheckReport) -> str:
    """One self-contained page: context, the table (one ``<tr>`` per artifact), the chart, notes."""
    esc = html.escape
    headers, rows = _columns(report)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        result = report.artifacts[i - 1] if i else None
        klass = result.status if result else "reference"
        name = result.name if result else "PyTorch (reference)"
        cells = []
        for j, cell in enumerate(row):
            cls = "status" if j == 2 else ("text" if j < 2 or j == len(row) - 1 else "")
            cells.append(f'<td class="{cls}">{esc(str(cell))}</td>')
        body.append(f'<tr class="{klass}" data-artifact="{esc(name)}">{"".join(cells)}</tr>')
    ref, img = report.reference, report.images
    context = [
        f"Reference: {display_name(ref['variant'])}, {ref['input_size']}×{ref['input_size']}, {ref['num_classes']} classes, "
        f"weights {ref['weights']}, {ref['runtime']}",
        f"Images: {img['description']}",
    ]
    if img.get("labels"):
        context.append(f"Labels: {img['labels']} ({img['mapping']})")
    notes = _footnotes(report)
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
    klass = "pass" if report.passed else "fail"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>shvit-check report</title><style>{_CSS}</style></head>
<body>
<h1>shvit-check report</h1>
<p class="verdict {klass}">{esc(report.verdict())}</p>
<ul>{"".join(f"<li>{esc(c)}</li>" for c in context)}</ul>
<h2>Results</h2>
<table id="results"><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<h2>Chart</h2>
<figure id="chart">{chart_svg(report)}</figure>
{"".join(p.html_section() for p in report.per_layer)}
{"<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>" if notes else ""}
<footer>Generated {esc(report.created)} by shvit-check ({SCHEMA}); {esc(versions)}</footer>
</body></html>
"""


def write_html(report: CheckReport, path: Path) -> None:
    write_atomic(path, render_html(report))
