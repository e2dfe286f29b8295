"""Accuracy-aware int8, once for every target: measure each op, keep the fewest ops float, or fall back.

The algorithm is the same whatever the format; a target supplies an :class:`Int8Backend` that knows its
graph (the quantisable ops and their MACs), how to quantise with some ops kept float, and how to run
the result. The steps:

1. quantise with the ranges of the chosen calibration method (optionally every method, to compare);
2. each op's own error (its int8 output against float on the same inputs), and for the worst ops the
   model's quality with only that op int8;
3. in ``auto``: regions of consecutive ops go back to float, best first, until the model meets the
   target on the calibration images (:func:`convert.int8.select.select_float_ops`);
4. past the float budget the outcome is weight-only int8: every op float, weights int8.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from convert.errors import ArgumentError
from convert.int8.ranges import DEFAULT_METHOD, METHODS
from convert.int8.report import (
    DEFAULT_MODE,
    INT8_TARGET,
    MODES,
    Int8Report,
    OpSensitivity,
    Quality,
    QualityTarget,
    aim,
    most_sensitive,
)
from convert.int8.select import Candidate, select_float_ops

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Int8Options:
    """How to make an int8 model: ``mode`` full|auto, ops forced float, the quality target, the range method."""

    mode: str = DEFAULT_MODE
    keep_float: tuple[str, ...] = ()
    target: QualityTarget = INT8_TARGET
    calibration: str = DEFAULT_METHOD
    compare_methods: bool = False
    """Also quantise with every other calibration method and report their full-int8 quality."""
    measure_alone: bool | None = None
    """Measure each region alone in float before ranking them; None: the backend's choice (see :class:`Int8Backend`)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ArgumentError(f"{self.mode!r} is not one of {', '.join(MODES)}", argument="int8_mode")
        if self.calibration not in METHODS:
            raise ArgumentError(f"{self.calibration!r} is not one of {', '.join(METHODS)}", argument="calib_method")

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "keep_float": list(self.keep_float),
            "calibration": self.calibration,
            "compare_methods": self.compare_methods,
            "measure_alone": self.measure_alone,
            "target": {
                "min_cosine": self.target.min_cosine,
                "top1": self.target.top1,
                "max_float_mac_share": self.target.max_float_mac_share,
                "top1_gated": self.target.top1_gated,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Int8Options:
        return cls(
            mode=data["mode"],
            keep_float=tuple(data["keep_float"]),
            calibration=data["calibration"],
            compare_methods=data["compare_methods"],
            measure_alone=data.get("measure_alone"),
            target=QualityTarget(**data["target"]),
        )


PLAIN_FULL_INT8 = Int8Options(mode="full", calibration="minmax")
"""Every op int8 on min/max ranges: each toolchain's plain full-integer conversion, which auto mode is compared with."""


@dataclass(frozen=True)
class QuantOp:
    """One op the target quantises: the name users see (``keep_float``, reports) and the backend's handle."""

    name: str
    key: str
    """What the backend's quantiser takes (TFLite: the output tensor; Core ML: the MIL op name)."""
    op_type: str
    macs: int
    float_macs: int
    """MACs that run in float arithmetic when the op is kept float (0 where float ops keep int8 weights)."""


class Int8Backend(Protocol):
    """A target's half of int8: its graph, its quantiser and its runtime. Keys are :attr:`QuantOp.key`."""

    label: str
    """The target as a report names it (``tflite``, ``coreml``)."""
    display: str
    """The format as a person reads it (``TFLite``, ``Core ML``)."""
    region_ops: int
    """Consecutive ops tried float together: about one SHViT block in this graph's granularity."""
    measure_alone: bool
    """Whether measuring each region alone is cheap enough to do by default (else regions rank by own errors)."""
    trials_are_final: bool
    """Whether :meth:`trial` measures exactly the model :meth:`quantize` builds (else the final model is measured again)."""

    def ops(self) -> Sequence[QuantOp]: ...

    def use_ranges(self, method: str) -> None:
        """Set the activation ranges by ``method`` for everything after."""

    def own_errors(self) -> dict[str, float]:
        """Each op's own error (SQNR dB) with the current ranges."""

    def quantize(self, keep_float: Sequence[str]) -> Any:
        """The int8 model with ``keep_float`` ops float (weights int8 everywhere)."""

    def quality(self, model: Any) -> Quality:
        """``model`` against float on the calibration images."""

    def trial(self, keep_float: Sequence[str]) -> Quality:
        """Quality of a candidate choice, as cheaply as the runtime allows."""

    def alone_int8(self, key: str) -> Quality:
        """Quality with only op ``key`` int8 and everything else float."""

    def int8_mac_share(self, model: Any, kept: Sequence[str]) -> float: ...


def quantise_int8(backend: Int8Backend, options: Int8Options) -> tuple[Any, Int8Report]:
    """The int8 model by ``options`` and the report of what was measured and decided.

    ``full`` keeps only ``options.keep_float`` float. ``auto`` never fails for accuracy: past the float
    budget (``options.target.max_float_mac_share``) the outcome is ``int8-weights``, every op float.
    """
    ops = list(backend.ops())
    forced = _resolve(options.keep_float, ops, backend.display)
    name_of = {op.key: op.name for op in ops}
    evaluations = 0
    methods: dict[str, Quality] = {}
    for method in METHODS if options.compare_methods else ():
        backend.use_ranges(method)
        methods[method] = backend.quality(backend.quantize(forced))
        evaluations += 1
        log.info("calibration %s: %s", method, methods[method])
    backend.use_ranges(options.calibration)
    model = backend.quantize(forced)
    full = backend.quality(model)
    evaluations += 1
    errors = backend.own_errors()
    sensitivities = [OpSensitivity(op.name, op.op_type, op.macs, errors.get(op.key, math.nan), kept_float=op.key in forced) for op in ops]
    report = Int8Report(
        target=backend.label,
        mode=options.mode,
        calibration=options.calibration,
        quality_target=options.target,
        full_int8=full,
        final=full,
        keep_float=[name_of[k] for k in forced],
        int8_mac_share=backend.int8_mac_share(model, forced),
        outcome="int8",
        ops=sensitivities,
        calibration_methods=methods,
        evaluations=evaluations,
    )
    if options.mode == "full":
        return model, report
    key_of = {op.name: op.key for op in ops}
    for sensitivity in most_sensitive(sensitivities, also=[name_of[k] for k in forced]):
        sensitivity.alone_int8 = backend.alone_int8(key_of[sensitivity.name])
        report.evaluations += 1
        log.debug("alone int8 %s: %s", sensitivity.name, sensitivity.alone_int8)
    measure_alone = backend.measure_alone if options.measure_alone is None else options.measure_alone
    free = [op for op in ops if op.key not in forced]
    candidates = [
        Candidate(
            label=f"{chunk[0].name} … {chunk[-1].name}",
            members=[op.key for op in chunk],
            macs=sum(op.float_macs for op in chunk),
            prior=0.0
            if measure_alone
            else sum(10 ** (-errors[op.key] / 10) for op in chunk if math.isfinite(errors.get(op.key, math.nan))),
        )
        for chunk in (free[i : i + backend.region_ops] for i in range(0, len(free), backend.region_ops))
    ]
    selection = select_float_ops(
        candidates,
        lambda keys: backend.trial([*forced, *keys]),
        target=options.target,
        aim_for=aim(options.target),
        baseline=full,
        total_macs=sum(op.macs for op in ops) or 1,
        measure_alone=measure_alone,
    )
    report.evaluations += selection.evaluations
    kept = [*forced, *selection.keep_float]
    if not selection.met:
        # Weight-only int8 always keeps the accuracy: every op float, weights int8, the same interface.
        kept = [op.key for op in ops]
        report.outcome = "int8-weights"
    if kept != forced:
        model = backend.quantize(kept)
    if backend.trials_are_final and selection.met:
        report.final = selection.quality
    else:
        report.final = backend.quality(model)
        report.evaluations += 1
    region_of = {key: c.label for c in candidates for key in c.members}
    for op, sensitivity in zip(ops, sensitivities, strict=True):
        sensitivity.kept_float = op.key in kept
        sensitivity.region = region_of.get(op.key, "")
    report.regions = [
        {
            "label": c.label,
            "ops": len(c.members),
            "macs": c.macs,
            "kept_float": c.chosen,
            "alone_float": None if c.alone_float is None else c.alone_float.as_dict(),
        }
        for c in candidates
    ]
    report.keep_float = [name_of[k] for k in kept]
    report.int8_mac_share = backend.int8_mac_share(model, kept)
    report.notes = list(selection.notes)
    return model, report


def _resolve(names: Sequence[str], ops: Sequence[QuantOp], display: str) -> list[str]:
    """Backend keys for user-facing ``names`` (an op's name or its key); unknown names are one clear error."""
    by_name = {op.name: op.key for op in ops} | {op.key: op.key for op in ops}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        sample = ", ".join(op.name for op in ops[:3])
        raise ArgumentError(
            f"no quantisable {display} op named {unknown[0]!r}: the valid names (e.g. {sample}) are "
            "listed in any int8 export's .json sidecar under export.int8.ops",
            argument="keep_float",
        )
    return [by_name[n] for n in names]
