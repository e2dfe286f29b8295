"""The plain conversions our Core ML and TFLite exports are measured against, made by their own code.

The TFLite and Core ML packages own what a "plain" conversion is; this
module only calls them and writes the result beside the benchmark's exports, so one run shows ours
and the baselines side by side. A baseline whose code is missing becomes a row that says so.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convert.errors import NotBuiltYet

Log = Callable[[str], None]


@dataclass(frozen=True)
class Baseline:
    """One plain conversion; ``not_comparable`` says why its outputs cannot be checked against PyTorch, if so."""

    name: str
    target: str
    precision: str
    description: str
    suffix: str
    make: Callable[[Any, Path, int, Log], None]
    not_comparable: str = ""

    @property
    def label(self) -> str:
        return f"{self.target} {self.precision} (plain)"

    def filename(self, variant: str) -> str:
        return f"shvit_{variant}_{self.precision.replace('-', '_')}_plain{self.suffix}"


def _tflite_plain(source: Any, path: Path, input_size: int, log: Log) -> None:
    """convert.tflite's plain path: pixel-input fused model → ONNX opset 17 → onnx2tf defaults."""
    try:
        from convert.tflite.export import export_tflite
    except ImportError as exc:
        raise NotBuiltYet(f"no TFLite exporter in this version ({exc})") from None
    export_tflite(source.pixel_model, {"fp32": path}, input_size=input_size, labels=source.labels, rewrite=False, log=log)


def _coreml_plain(source: Any, path: Path, input_size: int, log: Log) -> None:
    """convert.coreml's plain conversion: ``ct.convert`` of the traced fused model, coremltools' defaults."""
    try:
        from convert.coreml.export import plain_conversion
    except ImportError as exc:
        raise NotBuiltYet(f"no Core ML exporter in this version ({exc})") from None
    plain_conversion(source.deploy, input_size).save(str(path))


BASELINES: tuple[Baseline, ...] = (
    Baseline("coreml-plain", "coreml", "fp16", "ct.convert of the traced fused model, defaults", ".mlpackage", _coreml_plain,
             not_comparable="a tensor-input program without classifier head: not checked against PyTorch here"),
    Baseline("tflite-plain", "tflite", "fp32", "fused model → ONNX opset 17 → onnx2tf defaults", ".tflite", _tflite_plain),
)


def baselines_for(targets: set[str]) -> list[Baseline]:
    return [b for b in BASELINES if b.target in targets]


def export_baseline(baseline: Baseline, source: Any, path: Path, *, input_size: int, log: Log) -> Path:
    """Write ``baseline``'s model for ``source`` to ``path``: complete or not at all."""
    log(f"→ exporting the plain {baseline.target} baseline ({baseline.description})")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial-{os.getpid()}-{path.name}")
    try:
        baseline.make(source, partial, input_size, log)
        if not partial.exists():
            raise NotBuiltYet(f"the {baseline.name} conversion wrote no file")
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(partial, path)
    finally:
        if partial.exists():
            shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
    return path
