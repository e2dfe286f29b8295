"""What an export is: targets, precisions, and one frozen dataclass per export."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shvit.config import get_variant

TARGETS: tuple[str, ...] = ("onnx", "coreml", "tflite")
PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32",),
    "coreml": ("fp16", "fp32", "int8-weights", "int8"),
    "tflite": ("fp32", "fp16", "int8-weights", "int8"),
}
DEFAULT_PRECISION: dict[str, str] = {"onnx": "fp32", "coreml": "fp16", "tflite": "fp32"}
CALIBRATED_PRECISIONS: frozenset[str] = frozenset({"int8"})
SUFFIX: dict[str, str] = {"onnx": ".onnx", "coreml": ".mlpackage", "tflite": ".tflite"}
DEFAULT_CALIB_COUNT = 32
DEFAULT_MIN_IOS = "auto"
MIN_IOS_CHOICES: tuple[str, ...] = ("auto", "16", "17", "18")
W8A8_MIN_IOS = "17"
"""Core ML W8A8 (``--precision int8``) needs iOS 17: its activation quantize/dequantize ops start there."""


@dataclass(frozen=True)
class ExportConfig:
    """Everything one export needs; validated on construction so exporters can trust it."""

    variant: str
    target: str
    out_dir: Path
    precision: str = ""
    weights: str | None = "imagenet"
    input_size: int = 0
    num_classes: int = 1000
    labels: Path | None = None
    calib_dir: Path | None = None
    calib_count: int = DEFAULT_CALIB_COUNT
    min_ios: str = DEFAULT_MIN_IOS
    opset: int = 17
    force: bool = False
    progress: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from convert.errors import ConvertError

        if self.target not in TARGETS:
            raise ConvertError(f"unknown target {self.target!r}: choose one of {', '.join(TARGETS)}")
        if not self.precision:
            object.__setattr__(self, "precision", DEFAULT_PRECISION[self.target])
        if self.precision not in PRECISIONS[self.target]:
            raise ConvertError(
                f"precision {self.precision!r} is not available for {self.target}: "
                f"choose one of {', '.join(PRECISIONS[self.target])}"
            )
        if self.variant != "auto":
            name = get_variant(self.variant).name
            object.__setattr__(self, "variant", name)
            if not self.input_size:
                object.__setattr__(self, "input_size", get_variant(name).config.img_size)
        elif not self.input_size:
            object.__setattr__(self, "input_size", 224)
        if self.precision in CALIBRATED_PRECISIONS and self.calib_dir is None:
            raise ConvertError(
                f"--precision {self.precision} calibrates activations on real images: pass --calib DIR "
                "(a folder of photos; 32+ recommended)"
            )
        self._resolve_min_ios()
        if self.calib_count < 1:
            raise ConvertError(f"--calib-count must be at least 1, not {self.calib_count}")
        if self.input_size < 32 or self.input_size % 32:
            raise ConvertError(f"input size must be a multiple of 32 (the stem and two merges stride by 32), not {self.input_size}")

    def _resolve_min_ios(self) -> None:
        """``auto`` → iOS 16, or 17 for Core ML W8A8; an explicit target too old for W8A8 is an error, never rewritten."""
        from convert.errors import ConvertError

        w8a8 = self.target == "coreml" and self.precision == "int8"
        if self.min_ios not in MIN_IOS_CHOICES:
            raise ConvertError(f"--min-ios {self.min_ios} is not supported: choose one of {', '.join(MIN_IOS_CHOICES)}")
        if self.min_ios == "auto":
            object.__setattr__(self, "min_ios", W8A8_MIN_IOS if w8a8 else "16")
        elif w8a8 and int(self.min_ios) < int(W8A8_MIN_IOS):
            raise ConvertError(
                f"--precision int8 (W8A8) needs iOS {W8A8_MIN_IOS}+ for its int8 activation ops, but --min-ios is "
                f"{self.min_ios}: pass --min-ios {W8A8_MIN_IOS} (or leave it out), or use --precision int8-weights for iOS {self.min_ios}"
            )

    @property
    def stem(self) -> str:
        """File name without suffix, e.g. ``shvit_s3_fp16``."""
        return f"shvit_{self.variant}_{self.precision.replace('-', '_')}"

    @property
    def artifact_path(self) -> Path:
        return self.out_dir / f"{self.stem}{SUFFIX[self.target]}"
