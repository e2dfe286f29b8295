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
from convert.errors import ArgumentError, UsageError
from convert.targets import Target
from shvit.config import get_variant
from shvit.provenance import RANDOM_INIT_SEED

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
    seed: int | None = None
    """The random draw when ``weights`` is None (default :data:`shvit.RANDOM_INIT_SEED`), as the sidecar records it."""

    @property
    def random_seed(self) -> int:
        """The draw used when ``weights`` is None."""
        return RANDOM_INIT_SEED if self.seed is None else self.seed

    def naming(self) -> Naming | None:
        """The default file name's parts, when known before loading (not for ``auto``: the checkpoint decides)."""
        if self.variant == "auto":
            return None
        native = default_input_size(self.variant)
        return Naming(get_variant(self.variant).name, self.input_size if self.input_size is not None else native, native, self.num_classes)


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
class Naming:
    """What tells one export of a model from another, for its default file name: variant, size, head."""

    variant: str
    input_size: int
    native_size: int
    num_classes: int = 1000

    def stem(self, precision: str) -> str:
        """``shvit_s3_fp16``; ``shvit_s3_256px_10cls_fp16`` at another input size or with another head."""
        size = f"_{self.input_size}px" if self.input_size != self.native_size else ""
        classes = f"_{self.num_classes}cls" if self.num_classes != 1000 else ""
        return f"shvit_{self.variant}{size}{classes}_{precision.replace('-', '_')}"


@dataclass(frozen=True)
class ExportPlan:
    """An export validated against its target: the resolved precision and options and the file names."""

    target: Target
    precision: str
    options: dict[str, Any]
    calib: Path | None
    calib_count: int
    output: OutputSpec
    name: str | None = None
    """The artifact's file name without suffix, when the user gave one."""

    def stem(self, model: Naming | None) -> str:
        """File name without suffix: the given name, else e.g. ``shvit_s3_fp16`` (see :class:`Naming`)."""
        if self.name is not None:
            return self.name
        if model is None:
            raise ValueError("the default file name needs the model's Naming")
        return model.stem(self.precision)

    def artifact_name(self, model: Naming | None) -> str:
        return self.stem(model) + self.target.suffix

    def file_names(self, model: Naming | None) -> list[str]:
        """Everything the export writes: artifact, sidecar and the target's extra files."""
        name = self.artifact_name(model)
        return [name, f"{name}.json", *self.target.extra_files(self.stem(model))]

    @property
    def calibrated(self) -> bool:
        return self.precision in self.target.calibrated

    def record(self) -> dict[str, Any]:
        """The export settings as the sidecar records them."""
        return {
            "target": self.target.name,
            "precision": self.precision,
            **self.options,
            "calib_dir": str(self.calib) if self.calib else None,
            "calib_count": self.calib_count,
        }


ARTIFACT_LIKE_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".bin", ".safetensors", ".json", ".zip")
"""Besides the targets' own suffixes: what makes an ``out_dir`` look like a file name."""


def plan(options: ExportOptions, output: OutputSpec | None = None, *, name: str | None = None) -> ExportPlan:
    """Validate ``options`` against the target registry: every argument error before any work."""
    target = targets.get(options.target)
    output = output or OutputSpec()
    check_out_dir(output.out_dir)
    precision = targets.resolve_precision(target, options.precision)
    targets.require_toolchain(target)
    if precision in target.calibrated and options.calib is None:
        raise ArgumentError(
            f"{precision} calibrates activations on real images: give a folder of photos (32+ recommended)",
            argument="calib",
        )
    if options.calib_count < 1:
        raise ArgumentError(f"must be at least 1, not {options.calib_count}", argument="calib_count")
    declared = {option.name for option in target.options}
    foreign = sorted(set(options.target_options) - declared)
    if foreign:
        takes = ", ".join(sorted(declared)) or "no options of its own"
        raise ArgumentError(f"does not apply to the {target.name} target (it takes {takes})", argument=foreign[0])
    resolved = target.resolve_options(precision, dict(options.target_options))
    return ExportPlan(
        target,
        precision,
        resolved,
        Path(options.calib) if options.calib else None,
        options.calib_count,
        output,
        check_name(name, target) if name is not None else None,
    )


def check_out_dir(out_dir: Path) -> None:
    """``out_dir`` is a folder: one that looks like a file name is a mistake, not a folder to create."""
    suffix = out_dir.suffix.lower()
    if suffix and (suffix in targets.suffixes() or suffix in ARTIFACT_LIKE_SUFFIXES) and not out_dir.is_dir():
        raise UsageError(
            f"{out_dir} looks like a file name, but it is the folder to write into: "
            f"give a folder, and {out_dir.stem!r} as the artifact's name",
            argument="out_dir",
        )


def check_name(name: str, target: Target) -> str:
    """The artifact's stem from a user's ``name``: a plain file name, with or without the target's suffix."""
    stem = name[: -len(target.suffix)] if name.lower().endswith(target.suffix) else name
    if not stem or stem in (".", "..") or "/" in stem or "\\" in stem or stem.startswith("."):
        raise UsageError(f"{name!r} is not a plain file name: give a file name only (the folder is the output folder)", argument="name")
    other = Path(stem).suffix.lower()
    if other in targets.suffixes():
        raise UsageError(
            f"{name!r} ends in {other}, but a {target.name} export is a {target.suffix} file: name it {Path(stem).stem!r}",
            argument="name",
        )
    return stem


def default_input_size(variant: str) -> int:
    """The variant's own input size; ``auto`` (inferred from a checkpoint) starts from the usual 224."""
    return get_variant(variant).config.img_size if variant != "auto" else AUTO_INPUT_SIZE


def check_input_size(size: int) -> int:
    if size < INPUT_STRIDE or size % INPUT_STRIDE:
        raise ArgumentError(
            f"input size must be a multiple of {INPUT_STRIDE} (the stem and two merges stride by {INPUT_STRIDE}), not {size}",
            argument="input_size",
        )
    return size
