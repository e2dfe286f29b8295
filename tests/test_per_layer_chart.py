"""``shvit-check --per-layer --html``: a chart that shows the real dB range, and "exact" instead of a 999 dB stand-in."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import pytest

from convert.int8.report import EXACT_DB
from convert.validate.per_layer import CHART_LABELS, LayerRow, PerLayerReport
from convert.validate.report import pyplot

OPS = 40


def _report(*, exact_at: tuple[int, ...] = (0, 1, 20), own_exact_at: tuple[int, ...] = (6, 12)) -> PerLayerReport:
    """A falling SQNR (about 60 → 15 dB) with some ops equal to float: infinite SQNR and the export JSON's ``EXACT_DB``."""
    rows = []
    for i in range(OPS):
        sqnr = math.inf if i in exact_at else 60.0 - 1.1 * i + (3.0 if i % 2 else -3.0)
        own = EXACT_DB if i in own_exact_at else (25.0 + (i % 5) if i % 3 == 0 else None)
        rows.append(
            LayerRow(
                i,
                f"blocks.{i}/conv",
                "CONV_2D",
                "int8" if i % 4 else "float32",
                sqnr,
                own,
                0.9995 if own is not None else None,
                False if own is not None else None,
            )
        )
    return PerLayerReport("m_int8.tflite", "tflite", "fp32 TFLite", 8, rows, export_report=True)


def _finite_values(report: PerLayerReport) -> list[float]:
    values = [v for r in report.rows for v in (r.sqnr_db, r.own_sqnr_db) if v is not None]
    return [v for v in values if math.isfinite(v) and v < EXACT_DB]


@pytest.fixture()
def figure() -> Iterator[tuple[PerLayerReport, object]]:
    report = _report()
    fig = report.chart_figure()
    yield report, fig
    pyplot().close(fig)


def test_the_y_axis_covers_the_finite_values_not_the_exact_stand_in(figure) -> None:
    report, fig = figure
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    finite = _finite_values(report)
    assert low <= min(finite) and high >= max(finite)
    assert high < 100, f"the y-axis reaches {high:.0f} dB: an exact op stretched it"
    points = [y for collection in ax.collections for _, y in collection.get_offsets()]
    assert max(points) <= high and all(y < EXACT_DB for y in points)


def test_exact_ops_are_marked_at_the_top_with_their_own_marker_and_legend_entry(figure) -> None:
    report, fig = figure
    (ax,) = fig.axes
    _, high = ax.get_ylim()
    exact = [c for c in ax.collections if "exact" in str(c.get_label())]
    assert len(exact) == 1, [c.get_label() for c in ax.collections]
    offsets = exact[0].get_offsets()
    exact_ops = {r.index for r in report.rows if r.sqnr_db == math.inf or (r.own_sqnr_db or 0) >= EXACT_DB}
    assert {int(x) for x, _ in offsets} == exact_ops
    ys = {float(y) for _, y in offsets}
    assert len(ys) == 1 and max(_finite_values(report)) < ys.pop() < high
    assert "exact" in [t.get_text() for t in ax.get_yticklabels()]
    assert any("exact" in t.get_text() for t in ax.get_legend().get_texts())


def test_names_are_few_and_never_overlap() -> None:
    report = _report()
    for r in report.rows[30:36]:  # six neighbouring ops with the worst own errors: their names would pile up
        r.own_sqnr_db = 5.0 + 0.1 * r.index
    fig = report.chart_figure()
    try:
        (ax,) = fig.axes
        renderer = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        assert 1 <= len(boxes) <= CHART_LABELS
        assert not [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
    finally:
        pyplot().close(fig)


def test_the_html_chart_has_no_tick_near_1000_db() -> None:
    svg = _report().chart_svg()
    numbers = [float(t) for t in re.findall(r"<text[^>]*>\s*(-?\d+(?:\.\d+)?)\s*</text>", svg)]
    assert numbers and max(numbers) < 100, f"tick labels up to {max(numbers):g}"
    assert re.search(r"<text[^>]*>\s*exact\s*</text>", svg)


def test_the_table_and_html_say_exact_not_999() -> None:
    report = _report()
    table = "\n".join(report.table())
    section = report.html_section()
    table_part = section[section.index("<table") :]
    for text in (table, table_part):
        assert "exact" in text and "999" not in text and "inf" not in text
    assert table_part.count("<td>exact</td>") == len({0, 1, 20}) + len({6, 12})
