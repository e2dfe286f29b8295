"""The int8 options a target offers (``--int8-mode``, ``--keep-float``, the quality target, the range method).

TFLite and Core ML declare the same options from here, so the flags read alike for both; each
target turns the resolved values into its own options object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convert.errors import ArgumentError
from convert.int8.engine import Int8Options
from convert.int8.ranges import DEFAULT_METHOD, METHODS
from convert.int8.report import INT8_TARGET, MODES, QualityTarget
from convert.targets import TargetOption

INT8_MODE = TargetOption(
    "int8_mode",
    MODES,
    "auto",
    "For --precision int8. auto: calibrate, measure every op's sensitivity and keep in float the fewest ops that meet "
    "--int8-min-cosine/--int8-min-top1 on the calibration images (weight-only int8 if that needs too much float); "
    "full: every quantisable op in int8.",
)
KEEP_FLOAT = TargetOption(
    "keep_float",
    None,
    "",
    "For --precision int8: comma-separated op names to keep in float, in any mode (the names are listed in an int8 "
    "export's .json sidecar under export.int8.ops).",
)
MIN_COSINE = TargetOption(
    "int8_min_cosine", None, f"{INT8_TARGET.min_cosine:g}", "For --precision int8 auto: the lowest per-image cosine to reach."
)
MIN_TOP1 = TargetOption(
    "int8_min_top1", None, f"{INT8_TARGET.top1:.2f}", "For --precision int8 auto: the top-1 agreement with float to reach."
)
CALIB_METHOD = TargetOption(
    "calib_method",
    METHODS,
    DEFAULT_METHOD,
    "For --precision int8: how activation ranges are set from the calibration images (percentile clips outliers).",
)
OPTIONS: tuple[TargetOption, ...] = (INT8_MODE, KEEP_FLOAT, MIN_COSINE, MIN_TOP1, CALIB_METHOD)


def resolve_int8(precision: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The int8 options' values for ``precision`` int8 (defaults filled in); refused for any other precision."""
    named = [option.name for option in OPTIONS if given.get(option.name) not in (None, "")]
    if precision != "int8":
        if named:
            raise ArgumentError(f"applies to int8 only, not {precision}", argument=named[0])
        return {}
    mode = str(given.get("int8_mode") or INT8_MODE.default)
    method = str(given.get("calib_method") or CALIB_METHOD.default)
    for option, value in ((INT8_MODE, mode), (CALIB_METHOD, method)):
        if option.choices is not None and value not in option.choices:
            raise ArgumentError(f"{value!r} is not one of {', '.join(option.choices)}", argument=option.name)
    keep = given.get("keep_float") or ()
    names = tuple(n.strip() for n in (keep.split(",") if isinstance(keep, str) else keep) if n.strip())
    return {
        "int8_mode": mode,
        "keep_float": names,
        "calib_method": method,
        "int8_min_cosine": _fraction(given, MIN_COSINE),
        "int8_min_top1": _fraction(given, MIN_TOP1),
    }


def int8_options(options: Mapping[str, Any], *, random_weights: bool = False) -> Int8Options:
    """The engine's options from resolved target options; on random weights top-1 is not gated (near-tied logits make it chance)."""
    target = QualityTarget(min_cosine=options["int8_min_cosine"], top1=options["int8_min_top1"], top1_gated=not random_weights)
    return Int8Options(mode=options["int8_mode"], keep_float=options["keep_float"], target=target, calibration=options["calib_method"])


def _fraction(given: Mapping[str, Any], option: TargetOption) -> float:
    text = given.get(option.name)
    text = option.default if text in (None, "") else text
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ArgumentError(f"{text!r} is not a number: give a fraction such as {option.default}", argument=option.name) from None
    if not 0.0 < value <= 1.0:
        raise ArgumentError(f"{text} must be a fraction in (0, 1], such as {option.default}", argument=option.name)
    return value
