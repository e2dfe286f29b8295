"""The plain conversions our exports are measured against, made by their targets' own code.

Each target owns what its "plain" conversion is (:class:`convert.targets.PlainBaseline` and its
``export_plain``); this module only asks the registry and writes the result beside the benchmark's
exports, so one run shows ours and the baselines side by side.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convert import targets
from convert.errors import ConvertError
from convert.io.scratch import Scratch
from convert.io.staging import STAGING_PREFIX
from convert.targets import PlainBaseline, Target

if TYPE_CHECKING:
    from convert.source import ModelSource

Log = Callable[[str], None]


@dataclass(frozen=True)
class Baseline:
    """One target's plain conversion, as a benchmark row."""

    target: Target
    plain: PlainBaseline

    @property
    def precision(self) -> str:
        return self.plain.precision

    @property
    def description(self) -> str:
        return self.plain.description

    @property
    def not_comparable(self) -> str:
        return self.plain.not_comparable

    @property
    def label(self) -> str:
        return f"{self.target.name} {self.precision} (plain)"

    def filename(self, variant: str) -> str:
        return f"shvit_{variant}_{self.precision.replace('-', '_')}_plain{self.target.suffix}"


def baselines_for(names: Iterable[str]) -> list[Baseline]:
    """The baselines of the targets named, in registry order."""
    wanted = set(names)
    found = []
    for target in targets.available():
        plain = target.baseline
        if target.name in wanted and plain is not None:
            found.append(Baseline(target, plain))
    return found


def export_baseline(baseline: Baseline, source: ModelSource, path: Path, *, scratch: Scratch, log: Log) -> Path:
    """Write ``baseline``'s model for ``source`` to ``path``: complete or not at all."""
    log(f"→ exporting the plain {baseline.target.name} baseline ({baseline.description})")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{STAGING_PREFIX}{os.getpid()}-partial-{path.name}")
    try:
        baseline.target.export_plain(source, partial, scratch=scratch, log=log)
        if not partial.exists():
            raise ConvertError(f"the plain {baseline.target.name} conversion wrote no file")
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(partial, path)
    finally:
        if partial.exists():
            shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
    return path
