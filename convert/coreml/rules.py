"""What a Core ML export may be asked for: precisions and deployment targets, and the one rule between them."""

from __future__ import annotations

from convert.errors import ArgumentError

PRECISIONS: tuple[str, ...] = ("fp16", "fp32", "int8-weights", "int8")
MIN_IOS_CHOICES: tuple[str, ...] = ("auto", "16", "17", "18")
DEFAULT_MIN_IOS = "16"
W8A8_MIN_IOS = "17"
"""Core ML W8A8 (``int8``) needs iOS 17: its activation quantize/dequantize ops start there."""


def resolve_min_ios(precision: str, min_ios: str) -> str:
    """``auto`` → iOS 16, or 17 for W8A8; an explicit target too old for W8A8 is an error, never rewritten."""
    if precision not in PRECISIONS:
        raise ArgumentError(f"Core ML precision {precision!r} is not one of {', '.join(PRECISIONS)}", argument="precision")
    if min_ios not in MIN_IOS_CHOICES:
        raise ArgumentError(f"iOS {min_ios} is not supported: choose one of {', '.join(MIN_IOS_CHOICES)}", argument="min_ios")
    w8a8 = precision == "int8"
    if min_ios == "auto":
        return W8A8_MIN_IOS if w8a8 else DEFAULT_MIN_IOS
    if w8a8 and int(min_ios) < int(W8A8_MIN_IOS):
        raise ArgumentError(
            f"int8 (W8A8) needs iOS {W8A8_MIN_IOS}+ for its int8 activation ops, not iOS {min_ios}: "
            f"target iOS {W8A8_MIN_IOS} (or leave it to auto), or use int8-weights for iOS {min_ios}",
            argument="min_ios",
        )
    return min_ios
