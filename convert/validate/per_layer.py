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
from typing import Any

import numpy as np

from convert import targets
from convert.errors import UsageError
from convert.int8.report import LayerError
from convert.io.scratch import Scratch
from convert.source import ModelSource
from convert.targets import Log
from convert.validate.artifact_info import ArtifactInfo
from convert.validate.report import grid, pyplot

PER_LAYER_IMAGES = 8
"""Images each per-layer comparison runs (the SQNR is over all of them together)."""
WORST_SHOWN = 5
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
            ranked = sorted((r for r in self.rows if r.own_sqnr_db is not None and not r.kept_float), key=lambda r: r.own_sqnr_db)
            return ranked[:count]
        falls = sorted(self.rows[1:], key=lambda r: r.sqnr_db - self.rows[r.index - 1].sqnr_db)
        return falls[:count]

    def as_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "target": self.target, "float_twin": self.twin, "images": self.images,
                "export_report": self.export_report, "ops": [r.as_dict() for r in self.rows],
                "worst": [r.name for r in self.worst()]}

    def table(self) -> list[str]:
        """The terminal table: every op in graph order."""
        rows = [[str(r.index), r.name, r.op_type, r.dtype + (" (kept)" if r.kept_float else ""), _db(r.sqnr_db),
                 _db(r.own_sqnr_db), _loss(r.alone_int8_cosine)] for r in self.rows]
        lines = [f"per-layer: {self.artifact} against its float twin ({self.twin}), {self.images} images, {len(self.rows)} ops", *grid(COLUMNS, rows)]
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
        return (f'<section class="per-layer" data-artifact="{esc(self.artifact)}"><h2>Per layer: {esc(self.artifact)}</h2>'
                f"<p>Against its float twin ({esc(self.twin)}) on {self.images} images. Most responsible: {worst or '-'}</p>"
                f"<figure>{self.chart_svg()}</figure>"
                f'<table class="per-layer"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></section>')

    def chart_svg(self) -> str:
        plt = pyplot()
        with plt.rc_context({"svg.fonttype": "none", "font.size": 9}):
            fig, ax = plt.subplots(figsize=(12, 3.6))
            x = np.array([r.index for r in self.rows])
            cap = max([r.sqnr_db for r in self.rows if math.isfinite(r.sqnr_db)] + [1.0]) + 5
            y = np.array([min(r.sqnr_db, cap) for r in self.rows])
            int8 = np.array([r.dtype == "int8" for r in self.rows], dtype=bool)
            ax.plot(x, y, color="#90a4ae", linewidth=1, zorder=1)
            ax.scatter(x[int8], y[int8], s=12, color="#1565c0", label="int8 op: SQNR vs float", zorder=2)
            ax.scatter(x[~int8], y[~int8], s=12, color="#9e9e9e", label="float op: SQNR vs float", zorder=2)
            own = [(r.index, r.own_sqnr_db) for r in self.rows if r.own_sqnr_db is not None and math.isfinite(r.own_sqnr_db)]
            if own:
                ax.scatter(*zip(*own), s=14, marker="x", color="#ef6c00", label="own error (export report)", zorder=3)
            for r in self.worst():
                ax.annotate(r.name, (r.index, min(r.own_sqnr_db if r.own_sqnr_db is not None else r.sqnr_db, cap)), fontsize=7,
                            xytext=(3, -10), textcoords="offset points", color="#c62828")
            ax.set_xlabel("op (graph order)")
            ax.set_ylabel("SQNR dB (higher is better)")
            ax.set_title(f"{self.artifact}: error along the depth")
            ax.legend(loc="upper right", fontsize=8)
            fig.tight_layout()
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg")
            plt.close(fig)
        text = buffer.getvalue()
        return text[text.index("<svg"):]


def check_per_layer(infos: Sequence[ArtifactInfo]) -> None:
    """Refuse before any work: only int8 artifacts of a target that compares op by op."""
    for info in infos:
        precision, _ = info.precision
        if precision != "int8":
            raise UsageError(f"{{per_layer}} compares int8 artifacts op by op; {info.path.name} is {precision or 'of unknown precision'}: "
                             "pass only int8 artifacts", argument="per_layer")
        if targets.per_layer_of(targets.get(info.target)) is None:
            raise UsageError(f"{{per_layer}} is not available for {info.target} artifacts ({info.path.name})", argument="per_layer")


def per_layer(info: ArtifactInfo, source: ModelSource, pixels: np.ndarray, *, scratch: Scratch, log: Log) -> PerLayerReport:
    """:class:`PerLayerReport` of one int8 artifact (see :func:`check_per_layer`) on ``pixels``."""
    target = targets.get(info.target)
    compare = targets.per_layer_of(target)
    if compare is None:
        raise UsageError(f"{{per_layer}} is not available for {info.target} artifacts", argument="per_layer")
    errors: list[LayerError]
    errors, twin = compare(info.path, source, pixels, scratch=scratch, log=log)
    export = ((info.sidecar or {}).get("export") or {}).get("int8") or {}
    by_name = {op["name"]: op for op in export.get("ops", [])}
    rows = []
    for index, error in enumerate(errors):
        op = by_name.get(error.name, {})
        alone = op.get("alone_int8")
        rows.append(LayerRow(index, error.name, error.op_type, error.dtype, error.sqnr_db, op.get("own_sqnr_db"),
                             None if not alone else alone.get("mean_cosine"), op.get("kept_float") if op else None))
    return PerLayerReport(info.path.name, info.target, twin, len(pixels), rows, export_report=bool(by_name))


def _db(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return "exact" if value == math.inf or value >= 999 else f"{value:.1f}"


def _loss(cosine: float | None) -> str:
    """The logits' 1 − cosine when the op alone is int8 (cosines this close to 1 read better as a loss)."""
    return "-" if cosine is None else f"{max(1.0 - cosine, 0.0):.1e}"


def _finite(value: float) -> float | None:
    return None if not math.isfinite(value) else value
