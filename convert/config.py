"""What one export is, in three parts: what model, how to export it, where to write it.

:class:`ModelSpec` (variant, weights, classes, labels, input size), :class:`ExportOptions`
(target, precision, calibration, the target's own options) and :class:`OutputSpec` (folder,
force, progress) are plain frozen dataclasses; :func:`plan` validates them together against the
target registry before any work, so a bad argument costs nothing.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convert import targets
from convert.errors import ArgumentError
from convert.targets import Target
from shvit.config import get_variant

DEFAULT_CALIB_COUNT = 32
DEFAULT_OPSET = 17
AUTO_INPUT_SIZE = 224
INPUT_STRIDE = 32
"""The stem and the two patch merges stride by 32 in all."""


@dataclass(frozen=True)
class ModelSpec:
    """What model: a variant (``s1``…``s4``, or ``auto`` to infer it from ``weights``) and its weights."""

    variant: str = "auto"
    weights: str | Path | None = "imagenet"
    """A checkpoint file, ``"imagenet"`` (the released weights, downloaded once) or None (random, not for deployment)."""
    num_classes: int = 1000
    labels: Path | Sequence[str] | None = None
    input_size: int | None = None


@dataclass(frozen=True)
class ExportOptions:
    """How to export: the target, its precision, calibration images and the target's own options."""

    target: str
    precision: str | None = None
    calib: Path | None = None
    calib_count: int = DEFAULT_CALIB_COUNT
    target_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputSpec:
    """Where to write: the folder, whether an existing artifact may be replaced, and progress bars."""

    out_dir: Path = Path("exports")
    force: bool = False
    progress: bool = False


@dataclass(frozen=True)
class ExportPlan:
    """An export validated against its target: the resolved precision and options and the file names."""

    target: Target
    precision: str
    options: dict[str, Any]
    calib: Path | None
    calib_count: int
    output: OutputSpec

    def stem(self, variant: str) -> str:
        """File name without suffix, e.g. ``shvit_s3_fp16``."""
        return f"shvit_{variant}_{self.precision.replace('-', '_')}"

    def artifact_name(self, variant: str) -> str:
        return self.stem(variant) + self.target.suffix

    def file_names(self, variant: str) -> list[str]:
        """Everything the export writes: artifact, sidecar and the target's extra files."""
        name = self.artifact_name(variant)
        return [name, f"{name}.json", *self.target.extra_files(self.stem(variant))]

    @property
    def calibrated(self) -> bool:
        return self.precision in self.target.calibrated

    def record(self) -> dict[str, Any]:
        """The export settings as the sidecar records them."""
        return {"target": self.target.name, "precision": self.precision, **self.options,
                "calib_dir": str(self.calib) if self.calib else None, "calib_count": self.calib_count}


def plan(options: ExportOptions, output: OutputSpec | None = None) -> ExportPlan:
    """Validate ``options`` against the target registry: every argument error before any work."""
    target = targets.get(options.target)
    precision = targets.resolve_precision(target, options.precision)
    targets.require_toolchain(target)
    if precision in target.calibrated and options.calib is None:
        raise ArgumentError(
            f"{{precision={precision}}} calibrates activations on real images: pass {{calib=DIR}} (a folder of photos; 32+ recommended)",
            argument="calib",
        )
    if options.calib_count < 1:
        raise ArgumentError(f"{{calib_count}} must be at least 1, not {options.calib_count}", argument="calib_count")
    declared = {option.name for option in target.options}
    foreign = sorted(set(options.target_options) - declared)
    if foreign:
        takes = ", ".join(sorted(declared)) or "no options of its own"
        raise ArgumentError(f"{{{foreign[0]}}} does not apply to {{target={target.name}}} (it takes {takes})", argument=foreign[0])
    resolved = target.resolve_options(precision, dict(options.target_options))
    return ExportPlan(target, precision, resolved, Path(options.calib) if options.calib else None, options.calib_count,
                      output or OutputSpec())


def default_input_size(variant: str) -> int:
    """The variant's own input size; ``auto`` (inferred from a checkpoint) starts from the usual 224."""
    return get_variant(variant).config.img_size if variant != "auto" else AUTO_INPUT_SIZE


def check_input_size(size: int) -> int:
    if size < INPUT_STRIDE or size % INPUT_STRIDE:
        raise ArgumentError(f"input size must be a multiple of {INPUT_STRIDE} (the stem and two merges stride by {INPUT_STRIDE}), "
                            f"not {size}", argument="input_size")
    return size
