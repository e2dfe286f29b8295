"""What an exported file is, read from the file itself and its JSON sidecar, without running it.

The checker needs the target, the precision (its tolerance) and the input size and class count
(to name a wrong-variant artifact in one line instead of failing on numbers). The graph is read by
the artifact's target, in a subprocess (:func:`convert.validate.runner.inspect_artifact`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convert import targets
from convert.errors import ConvertError
from convert.io.scratch import Scratch
from convert.io.sidecar import read_sidecar, size_of
from convert.validate.runner import inspect_artifact


@dataclass
class ArtifactInfo:
    """Facts about one artifact; ``None`` where the file does not say."""

    path: Path
    target: str
    size_bytes: int
    sidecar: dict[str, Any] | None = None
    input_size: int | None = None
    num_classes: int | None = None
    graph_precision: str | None = None
    ops: int | None = None  # ops run per prediction (Core ML: consts and constexpr weight decompression excluded)
    unreadable: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def precision(self) -> tuple[str | None, str]:
        """Precision and where it came from (said in the report: an inferred precision may be wrong)."""
        declared = (self.sidecar or {}).get("config", {}).get("precision")
        if declared:
            return str(declared), "sidecar"
        if self.graph_precision:
            return self.graph_precision, "inferred from the graph (no sidecar)"
        return None, "unknown"

    def sidecar_config(self, key: str) -> Any:
        return (self.sidecar or {}).get("config", {}).get(key)


def inspect(path: Path, *, scratch: Scratch, read_graph: bool = False) -> ArtifactInfo:
    """Target, sidecar and graph facts of ``path`` (its suffix already validated).

    A sidecar whose hash matches the file is trusted for input size and precision (no graph read:
    loading a toolchain costs seconds) unless ``read_graph``; otherwise the graph is read.
    """
    info = ArtifactInfo(path=path, target=targets.for_path(path).name, size_bytes=size_of(path))
    info.sidecar, note = read_sidecar(path)
    if note:
        info.notes.append(note)
    if not read_graph and info.sidecar is not None and info.sidecar.get("sha256") and isinstance(info.sidecar_config("input_size"), int):
        info.input_size = info.sidecar_config("input_size")
        return info
    try:
        facts = inspect_artifact(path, scratch=scratch)
    except ConvertError as exc:
        info.unreadable = str(exc)
        return info
    info.input_size, info.num_classes, info.graph_precision, info.ops = facts.input_size, facts.num_classes, facts.precision, facts.ops
    return info
