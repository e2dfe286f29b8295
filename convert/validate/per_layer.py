"""``shvit-check --per-layer``: an int8 artifact op by op against its float twin, to see which layer is responsible.

The artifact's target converts the reference model once more in float with the same converter
(so the ops share names) and compares every op output over the images: the SQNR column includes
what an op inherits, so it falls along the depth, and a sharp fall marks the op that costs most.
When the artifact's sidecar holds the export's int8 report (``export.int8``), each row also gets
the op's own error (its int8 output fed float inputs), its effect on the logits when it alone is
int8, and whether the export kept it float.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeGuard, cast

import numpy as np

from convert import targets
from convert.errors import UsageError
from convert.int8.report import EXACT_DB, LayerError
from convert.io.scratch import Scratch
from convert.source import ModelSource
from convert.targets import Log
from convert.validate.artifact_info import ArtifactInfo
from convert.validate.report import grid, pyplot

PER_LAYER_IMAGES = 8
"""Images each per-layer comparison runs (the SQNR is over all of them together)."""
WORST_SHOWN = 5
CHART_LABELS = 5
"""Ops named on the chart (the worst ones); more names only pile up on each other."""
COLUMNS = ("#", "op", "type", "runs in", "SQNR dB vs float", "own dB", "alone-int8 1−cos")
"""The table's columns, in the terminal and in HTML."""


@dataclass
class LayerRow:
    """One op: its error against the float twin and, from the export's report, its own error."""

    index: int
    name: str
    op_type: str
    dtype: str
    sqnr_db: float
    own_sqnr_db: float | None = None
    alone_int8_cosine: float | None = None
    kept_float: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["sqnr_db"] = _finite(self.sqnr_db)
        return record


@dataclass
class PerLayerReport:
    artifact: str
    target: str
    twin: str
    images: int
    rows: list[LayerRow] = field(default_factory=list)
    export_report: bool = False
    """Whether own errors and alone-int8 effects came from the artifact's sidecar."""

    def worst(self, count: int = WORST_SHOWN) -> list[LayerRow]:
        """The ops most responsible: lowest own error when the export measured it, else the sharpest SQNR falls."""
        if self.export_report and any(r.own_sqnr_db is not None for r in self.rows):
            # cast: the rows without an own error are filtered out
            ranked = sorted(
                (r for r in self.rows if r.own_sqnr_db is not None and not r.kept_float), key=lambda r: cast(float, r.own_sqnr_db)
            )
            return ranked[:count]
        falls = sorted(self.rows[1:], key=lambda r: _fall(self.rows[r.index - 1].sqnr_db, r.sqnr_db))
        return falls[:count]

    def as_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "target": self.target,
            "float_twin": self.twin,
            "images": self.images,
            "export_report": self.export_report,
            "ops": [r.as_dict() for r in self.rows],
            "worst": [r.name for r in self.worst()],
        }

    def table(self) -> list[str]:
        """The terminal table: every op in graph order."""
        rows = [
            [
                str(r.index),
                r.name,
                r.op_type,
                r.dtype + (" (kept)" if r.kept_float else ""),
                _db(r.sqnr_db),
                _db(r.own_sqnr_db),
                _loss(r.alone_int8_cosine),
            ]
            for r in self.rows
        ]
        lines = [
            f"per-layer: {self.artifact} against its float twin ({self.twin}), {self.images} images, {len(self.rows)} ops",
            *grid(COLUMNS, rows),
        ]
        worst = self.worst()
        if worst:
            how = "lowest own error" if self.export_report else "sharpest SQNR falls"
            lines.append(f"most responsible ({how}): " + ", ".join(f"#{r.index} {r.name}" for r in worst))
        return lines

    def html_section(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in COLUMNS)
        body = "\n".join(
            f'<tr class="{"float" if r.dtype != "int8" else "int8"}"><td>{r.index}</td><td class="text">{esc(r.name)}</td>'
            f'<td class="text">{esc(r.op_type)}</td><td class="text">{esc(r.dtype)}{" (kept)" if r.kept_float else ""}</td>'
            f"<td>{_db(r.sqnr_db)}</td><td>{_db(r.own_sqnr_db)}</td>"
            f"<td>{_loss(r.alone_int8_cosine)}</td></tr>"
            for r in self.rows
        )
        worst = ", ".join(esc(f"#{r.index} {r.name}") for r in self.worst())
        return (
            f'<section class="per-layer" data-artifact="{esc(self.artifact)}"><h2>Per layer: {esc(self.artifact)}</h2>'
            f"<p>Against its float twin ({esc(self.twin)}) on {self.images} images. Most responsible: {worst or '-'}</p>"
            f"<figure>{self.chart_svg()}</figure>"
            f'<table class="per-layer"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></section>'
        )

    def chart_figure(self) -> Any:
        """The SQNR along the depth as a matplotlib figure (the caller closes it).

        The y-axis spans the finite values only: an exact op (infinite SQNR, recorded as
        :data:`EXACT_DB`) is drawn as ▲ just above them, on a tick labelled "exact", so it cannot
        squash the real 0-100 dB range into a strip. Only the worst ops are named, and a name that
        would overlap one already placed is left out.
        """
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(12, 3.6))
        finite = [v for r in self.rows for v in (r.sqnr_db, r.own_sqnr_db) if _plotted(v) and not _exact(v)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        margin = max(0.08 * (high - min(low, 0.0)), 2.0)
        exact_y = high + margin
        bottom = min(low - margin, 0.0)

        def y_of(value: float | None) -> float | None:
            if value is None or not _plotted(value):
                return None
            return exact_y if _exact(value) else float(value)

        points = [(r.index, y_of(r.sqnr_db), r.dtype == "int8", _exact(r.sqnr_db)) for r in self.rows if _plotted(r.sqnr_db)]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], color="#90a4ae", linewidth=1, zorder=1)
        for label, colour, keep in (
            ("int8 op: SQNR vs float", "#1565c0", lambda p: p[2] and not p[3]),
            ("float op: SQNR vs float", "#9e9e9e", lambda p: not p[2] and not p[3]),
        ):
            chosen = [p for p in points if keep(p)]
            if chosen:
                ax.scatter([p[0] for p in chosen], [p[1] for p in chosen], s=12, color=colour, label=label, zorder=2)
        own = [(r.index, y_of(r.own_sqnr_db)) for r in self.rows if _plotted(r.own_sqnr_db) and not _exact(r.own_sqnr_db)]
        if own:
            ax.scatter(*zip(*own), s=14, marker="x", color="#ef6c00", label="own error (export report)", zorder=3)
        exact = sorted({r.index for r in self.rows if _exact(r.sqnr_db) or _exact(r.own_sqnr_db)})
        if exact:
            ax.scatter(
                exact, [exact_y] * len(exact), s=22, marker="^", color="#2e7d32", label="exact (equals float; drawn at top)", zorder=4
            )
            ax.axhline(exact_y, color="#2e7d32", linewidth=0.6, linestyle=":", zorder=0)
        ax.set_ylim(bottom, exact_y + margin)
        ticks = [t for t in ax.get_yticks() if bottom <= t <= high + margin / 2]
        ax.set_yticks([*ticks, *([exact_y] if exact else [])], [f"{t:g}" for t in ticks] + (["exact"] if exact else []))
        if len(self.rows) > 1:
            ax.set_xlim(self.rows[0].index - 1, self.rows[-1].index + 1)
        ax.set_xlabel("op (graph order)")
        ax.set_ylabel("SQNR dB (higher is better)")
        ax.set_title(f"{self.artifact}: error along the depth")
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        self._label_worst(ax, y_of)  # after the layout: overlaps are judged where the names will be drawn
        return fig

    def _label_worst(self, ax: Any, y_of: Any) -> None:
        """Name the :data:`CHART_LABELS` worst ops; a name that would overlap one already placed (below or
        above its point) is left out, so the names stay legible however the worst ops cluster."""
        renderer = ax.figure.canvas.get_renderer()
        left, right = ax.get_xlim()
        placed: list[Any] = []
        for r in self.worst(CHART_LABELS):
            y = y_of(r.own_sqnr_db if _plotted(r.own_sqnr_db) else r.sqnr_db)
            if y is None:
                continue
            near_right = r.index > left + 0.75 * (right - left)  # text runs leftwards there, so it stays inside
            for dy in (-10, 5):
                note = ax.annotate(
                    r.name,
                    (r.index, y),
                    fontsize=7,
                    xytext=(-3 if near_right else 3, dy),
                    textcoords="offset points",
                    ha="right" if near_right else "left",
                    color="#c62828",
                )
                box = note.get_window_extent(renderer)
                if not any(box.overlaps(other) for other in placed):
                    placed.append(box)
                    break
                note.remove()

    def chart_svg(self) -> str:
        """:meth:`chart_figure` as an inline ``<svg>`` element, its text kept as text."""
        plt = pyplot()
        with plt.rc_context({"svg.fonttype": "none", "font.size": 9}):
            fig = self.chart_figure()
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg")
            plt.close(fig)
        text = buffer.getvalue()
        return text[text.index("<svg") :]


def check_per_layer(infos: Sequence[ArtifactInfo]) -> None:
    """Refuse before any work: only int8 artifacts of a target that compares op by op."""
    for info in infos:
        precision, _ = info.precision
        if precision != "int8":
            raise UsageError(
                f"compares int8 artifacts op by op; {info.path.name} is {precision or 'of unknown precision'}: give only int8 artifacts",
                argument="per_layer",
            )
        if not targets.get(info.target).per_layer_check:
            raise UsageError(f"not available for {info.target} artifacts ({info.path.name})", argument="per_layer")


def per_layer(info: ArtifactInfo, source: ModelSource, pixels: np.ndarray, *, scratch: Scratch, log: Log) -> PerLayerReport:
    """:class:`PerLayerReport` of one int8 artifact (see :func:`check_per_layer`) on ``pixels``."""
    target = targets.get(info.target)
    if not target.per_layer_check:
        raise UsageError(f"not available for {info.target} artifacts", argument="per_layer")
    errors: list[LayerError]
    errors, twin = target.per_layer(info.path, source, pixels, scratch=scratch, log=log)
    export = ((info.sidecar or {}).get("export") or {}).get("int8") or {}
    by_name = {op["name"]: op for op in export.get("ops", [])}
    rows = []
    for index, error in enumerate(errors):
        op = by_name.get(error.name, {})
        alone = op.get("alone_int8")
        rows.append(
            LayerRow(
                index,
                error.name,
                error.op_type,
                error.dtype,
                error.sqnr_db,
                op.get("own_sqnr_db"),
                None if not alone else alone.get("mean_cosine"),
                op.get("kept_float") if op else None,
            )
        )
    return PerLayerReport(info.path.name, info.target, twin, len(pixels), rows, export_report=bool(by_name))


def _exact(value: float | None) -> bool:
    """An op equal to float: infinite SQNR, which the export's JSON records as :data:`EXACT_DB`."""
    return value is not None and value >= EXACT_DB


def _plotted(value: float | None) -> TypeGuard[float]:
    """A value with a place on the chart: a number or exact (not missing, not NaN, not −inf)."""
    return value is not None and not math.isnan(value) and value != -math.inf


def _fall(before: float, after: float) -> float:
    """How far the SQNR changes from one op to the next (negative: a fall); two exact ops change nothing."""
    change = after - before
    return 0.0 if math.isnan(change) else change


def _db(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return "exact" if _exact(value) else f"{value:.1f}"


def _loss(cosine: float | None) -> str:
    """The logits' 1 − cosine when the op alone is int8 (cosines this close to 1 read better as a loss)."""
    return "-" if cosine is None else f"{max(1.0 - cosine, 0.0):.1e}"


def _finite(value: float) -> float | None:
    return None if not math.isfinite(value) else value
