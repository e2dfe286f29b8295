"""Results of an accuracy-aware int8 conversion: per-op sensitivity, quality figures, the decision.

Everything here is plain data (JSON-ready through :func:`dataclasses.asdict`), so the TFLite
conversion child can send it to the parent and the CLI can print or store it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MODES: tuple[str, ...] = ("auto", "full")
"""``full``: every op the target can quantise is int8 (today's graph). ``auto``: the fewest ops
that meet :class:`QualityTarget` on the calibration images stay float."""

DEFAULT_MODE = "auto"


@dataclass(frozen=True)
class QualityTarget:
    """What "keeps its accuracy" means: against the float model, over images."""

    min_cosine: float
    top1: float
    max_float_mac_share: float = 0.35
    """Above this share of MACs in float32 arithmetic, int8 is no longer worth it: fall back to weight-only."""
    top1_gated: bool = True
    """False on random weights: their logits are near-ties, so top-1 agreement measures chance (cosine decides alone)."""

    def met_by(self, quality: Quality) -> bool:
        return quality.min_cosine >= self.min_cosine and (not self.top1_gated or quality.top1 >= self.top1)

    def describe(self) -> str:
        """``min cosine 0.98, top-1 90%`` as a user set it."""
        return f"min cosine {self.min_cosine:g}" + (f", top-1 {self.top1:.0%}" if self.top1_gated else " (top-1 not gated: random weights)")


INT8_TARGET = QualityTarget(min_cosine=0.98, top1=0.90)
"""The default bar for every target's int8 (``--int8-min-cosine``/``--int8-min-top1``)."""
COSINE_MARGIN = 0.01
TOP1_MARGIN = 0.05
"""Selection aims this much higher on the calibration images than the target, so that it holds on
images it did not see. Measured on image-dependent S1 (TFLite): aiming at the bare target (0.985 /
90% on calibration images) gave 0.986 / 87.5% on held-out ones; top-1 agreement over a few dozen
images moves in steps of 3% and, with SHViT's small logit margins, needs a cosine near 0.995."""


def aim(target: QualityTarget) -> QualityTarget:
    """What selection asks of the calibration images for ``target`` to hold on held-out images."""
    return QualityTarget(
        min(target.min_cosine + COSINE_MARGIN, 0.9999), min(target.top1 + TOP1_MARGIN, 1.0), target.max_float_mac_share, target.top1_gated
    )


@dataclass(frozen=True)
class Quality:
    """Logit similarity of a quantised model to the float one over N images."""

    images: int
    min_cosine: float
    mean_cosine: float
    top1: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quality(reference: np.ndarray, candidate: np.ndarray) -> Quality:
    """Per-image cosine (the minimum matters: one bad image is one wrong answer) and top-1 agreement."""
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
    cand = np.asarray(candidate, np.float64).reshape(len(candidate), -1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.sum(ref * cand, axis=1) / np.where(norms == 0, 1.0, norms)
    top1 = float(np.mean(ref.argmax(1) == cand.argmax(1)))
    return Quality(images=len(ref), min_cosine=float(cosine.min()), mean_cosine=float(cosine.mean()), top1=top1)


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio in dB (inf when identical)."""
    total = SqnrSum()
    total.add(reference, candidate)
    return total.db


@dataclass
class OpSensitivity:
    """How much one quantisable op costs in int8.

    ``name`` is the user-facing name (``keep_float`` takes it): the op's output tensor name in
    TFLite, the MIL op name in Core ML. ``own_sqnr_db`` is the op's own error (its output, fed float
    inputs, against float); ``alone_float`` is the model's quality with only this op in float (the
    rest int8); ``alone_int8`` with only this op in int8, everything else float (measured for the
    :data:`ALONE_OPS` ops with the worst own error and any forced float, else None).
    """

    name: str
    op_type: str
    macs: int
    own_sqnr_db: float
    alone_float: Quality | None = None
    alone_int8: Quality | None = None
    region: str = ""
    kept_float: bool = False

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if not math.isfinite(self.own_sqnr_db):
            record["own_sqnr_db"] = None if math.isnan(self.own_sqnr_db) else EXACT_DB
        return record


@dataclass(frozen=True)
class LayerError:
    """One op output of a quantised artifact against the same tensor of its float twin, over images.

    The error includes what the op inherits from the ops before it, so along the depth it shows
    where the model's error grows; ``float`` ops (kept float, or never quantised) add only what
    their inputs bring.
    """

    name: str
    op_type: str
    dtype: str
    sqnr_db: float


class SqnrSum:
    """Signal and noise energy of one tensor summed over images: the SQNR of all of them together."""

    __slots__ = ("noise", "signal")

    def __init__(self) -> None:
        self.signal = self.noise = 0.0

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        ref = np.asarray(reference, np.float64)
        self.signal += float(np.sum(ref**2))
        self.noise += float(np.sum((ref - np.asarray(candidate, np.float64)) ** 2))

    @property
    def db(self) -> float:
        if self.noise == 0:
            return math.inf
        return 10 * math.log10(max(self.signal, 1e-30) / self.noise)


ALONE_OPS = 12
"""Quantisable ops (the worst by own error, plus any forced float) measured alone in int8, with
everything else float: each costs one quantise-and-run (about 0.6 s in TFLite), so not every op."""
ALONE_IMAGES = 8
"""Calibration images each alone-in-int8 measurement runs."""


def most_sensitive(ops: list[OpSensitivity], *, count: int = ALONE_OPS, also: Sequence[str] = ()) -> list[OpSensitivity]:
    """The ``count`` ops with the worst own error (finite ones), and those named in ``also``, in graph order."""
    ranked = sorted((op for op in ops if math.isfinite(op.own_sqnr_db)), key=lambda op: op.own_sqnr_db)[:count]
    wanted = {op.name for op in ranked} | set(also)
    return [op for op in ops if op.name in wanted]


@dataclass
class Int8Report:
    """What an int8 conversion decided and measured, per op and for the whole model."""

    target: str
    mode: str
    calibration: str
    quality_target: QualityTarget
    full_int8: Quality
    final: Quality
    keep_float: list[str]
    int8_mac_share: float
    outcome: str  # "int8" (target met or mode full), "int8-weights" (fell back), "int8-missed" (auto, best effort)
    ops: list[OpSensitivity] = field(default_factory=list)
    regions: list[dict[str, Any]] = field(default_factory=list)
    calibration_methods: dict[str, Quality] = field(default_factory=dict)
    evaluations: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["ops"] = [op.as_dict() for op in self.ops]
        return record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Int8Report:
        def q(value: dict[str, Any] | None) -> Quality | None:
            return None if value is None else Quality(**value)

        ops = [
            OpSensitivity(
                **{
                    **op,
                    "own_sqnr_db": math.inf
                    if op["own_sqnr_db"] == EXACT_DB
                    else (math.nan if op["own_sqnr_db"] is None else op["own_sqnr_db"]),
                    "alone_float": q(op["alone_float"]),
                    "alone_int8": q(op["alone_int8"]),
                }
            )
            for op in data["ops"]
        ]
        return cls(
            target=data["target"],
            mode=data["mode"],
            calibration=data["calibration"],
            quality_target=QualityTarget(**data["quality_target"]),
            full_int8=Quality(**data["full_int8"]),
            final=Quality(**data["final"]),
            keep_float=list(data["keep_float"]),
            int8_mac_share=data["int8_mac_share"],
            outcome=data["outcome"],
            ops=ops,
            regions=list(data["regions"]),
            calibration_methods={k: Quality(**v) for k, v in data["calibration_methods"].items()},
            evaluations=data["evaluations"],
            notes=list(data["notes"]),
        )


EXACT_DB = 999.0
"""How JSON records an op whose int8 output equals float (infinite SQNR); shown as "exact"."""
OUTCOMES: dict[str, str] = {
    "int8": "int8 weights and activations",
    "int8-weights": "weight-only int8 (activations float)",
    "int8-missed": "int8 weights and activations, short of the target",
}


def describe_db(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "exact" if value >= EXACT_DB or math.isinf(value) else f"{value:.1f} dB"


def describe_outcome(report: dict[str, Any]) -> str:
    """What the int8 file is, in words a user can act on: the line that ends the export, and the sidecar's ``contents``."""
    outcome = report["outcome"]
    what = OUTCOMES.get(outcome, outcome)
    share = f"{report['int8_mac_share']:.0%} of MACs int8"
    if outcome == "int8-weights":
        target = QualityTarget(**report["quality_target"]).describe()
        return f"{what}: int8 activations could not reach the target ({target}) within the float budget"
    kept = len(report["keep_float"])
    return f"{what}, {share}" + (f", {kept} op{'s' if kept != 1 else ''} kept float" if kept else "")


def log_int8_report(report: dict[str, Any] | None, *, log: Callable[[str], None]) -> None:
    """The export's int8 lines: what stayed float and why, the int8 share of MACs, quality before and after."""
    if not report:
        return
    full, final = report["full_int8"], report["final"]
    target = QualityTarget(**report["quality_target"])
    if report["mode"] == "auto":
        aimed = aim(target)
        log(
            f"  int8 target: {target.describe()} on images it did not see (selection asks min cosine {aimed.min_cosine:g}"
            + (f", top-1 {aimed.top1:.0%}" if target.top1_gated else "")
            + " of the calibration images)"
        )
    log(
        f"  int8 {report['mode']} ({report['calibration']} ranges): every op int8 gave min cosine {full['min_cosine']:.4f}, "
        f"top-1 {full['top1']:.0%} on the calibration images"
    )
    by_name = {op["name"]: op for op in report["ops"]}
    kept = report["keep_float"]
    if kept:
        shown = ", ".join(
            f"{name} ({describe_db(by_name[name]['own_sqnr_db'])})"
            if name in by_name and by_name[name]["own_sqnr_db"] is not None
            else name
            for name in kept[:8]
        )
        log(f"  kept in float: {len(kept)} op{'s' if len(kept) != 1 else ''}: {shown}{' …' if len(kept) > 8 else ''}")
    alone = sorted((op for op in report["ops"] if op.get("alone_int8")), key=lambda op: op["alone_int8"]["mean_cosine"])
    if alone:
        log(
            f"  alone in int8 ({len(alone)} ops measured: the worst own errors and any kept float by request; everything else "
            "float), lowest logit cosine: " + ", ".join(f"{op['name']} {op['alone_int8']['mean_cosine']:.5f}" for op in alone[:3])
        )
    log(f"  result: {describe_outcome(report)}; min cosine {final['min_cosine']:.4f}, top-1 {final['top1']:.0%} on the calibration images")
    for note in report["notes"]:
        log(f"  · {note}")
