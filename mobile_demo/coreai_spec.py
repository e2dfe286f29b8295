"""What the Core AI app needs to know about an ``.aimodel`` asset, read back from the saved asset itself.

The facts come from :func:`convert.coreai.inspect.facts` (coreai-core's own reader of the stored
program and its metadata), never from the export's memory or the file name, so an app generated
for one asset cannot silently drift from another.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mobile_demo.errors import DemoError, NotAnImageClassifier, checked_model_path

COREAI_SUFFIX = ".aimodel"
APP_MIN_IOS = 27
"""Core AI ships in iOS 27: the app's deployment target, whatever the asset records."""
INPUT_DTYPE = "Float32"
"""The only input the app packs: float32 RGB 0-255, NCHW (what ``shvit-convert --target coreai`` writes)."""


@dataclass(frozen=True)
class CoreAIFacts:
    """The asset facts the generated Swift code is specialised to."""

    path: Path
    function_name: str
    input_name: str
    output_name: str
    input_size: int
    labels: tuple[str, ...]
    crop_fraction: float
    min_ios: int
    precision: str
    metadata: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def read_coreai(path: Path) -> CoreAIFacts:
    """Facts of an image classifier ``.aimodel``; a :class:`DemoError` naming the problem otherwise."""
    from calib import CROP_PCT
    from convert.coreai.deps import CoreAIUnavailable
    from convert.coreai.export import ENTRYPOINT, LOGITS_NAME
    from convert.coreai.inspect import facts
    from convert.errors import ConvertError

    path = checked_model_path(
        path, suffix=COREAI_SUFFIX, folder=True, target="coreai", kind="Core AI asset", takes="the Core AI demo takes a .aimodel folder"
    )
    native: list[str] = []
    try:
        with _native_stderr(native):
            read = facts(path)
    except CoreAIUnavailable:
        raise
    except ConvertError as exc:
        raise DemoError(f"model {path} is not a readable Core AI asset ({exc}); re-export it for the coreai target") from None
    except Exception as exc:  # coreai-core raises its own runtime errors for damaged programs
        said = f"; coreai-core: {native[-1].rpartition('error: ')[2]}" if native else ""
        raise DemoError(f"model {path} is not a readable Core AI asset ({type(exc).__name__}: {exc}{said}); re-export it") from None
    shape = read["input_shape"]
    if read["input_name"] is None or shape is None or len(shape) != 4 or shape[:2] != [1, 3] or shape[2] != shape[3]:
        raise NotAnImageClassifier(
            f"{path.name} takes {read['input_name']!r} shaped {shape}, not one 1x3xSxS image: export it for the coreai target"
        )
    if read["input_dtype"] != INPUT_DTYPE:
        raise NotAnImageClassifier(f"{path.name} takes {read['input_dtype']} pixels: the demo packs {INPUT_DTYPE} RGB 0-255")
    if read["num_classes"] is None:
        raise NotAnImageClassifier(f"{path.name} has no {LOGITS_NAME!r} output of class scores: it is not an SHViT classifier asset")
    labels = read["labels"]
    if not labels:
        raise NotAnImageClassifier(f"{path.name} has no labels in its creator metadata 'shvit.labels': re-export it for the coreai target")
    if len(labels) != read["num_classes"]:
        raise NotAnImageClassifier(
            f"{path.name} stores {len(labels)} labels for {read['num_classes']} class scores: re-export it with the right labels"
        )
    if read["num_classes"] < 2:
        raise NotAnImageClassifier(f"{path.name} has {read['num_classes']} class: a classifier needs at least two")
    return CoreAIFacts(
        path=path,
        function_name=ENTRYPOINT,
        input_name=read["input_name"],
        output_name=LOGITS_NAME,
        input_size=int(shape[-1]),
        labels=tuple(str(label) for label in labels),
        crop_fraction=CROP_PCT,
        min_ios=max(APP_MIN_IOS, _major(read["minimum_os"])),
        precision=str(read["precision"]),
        metadata={k: str(v) for k, v in read["metadata"].items()},
        description=str(read["description"] or ""),
    )


@contextlib.contextmanager
def _native_stderr(lines: list[str]) -> Iterator[None]:
    """Collect what native code writes to file descriptor 2 into ``lines``: coreai-core's program
    reader prints parse errors there, which would break the CLI's one-line error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(line for line in sink.read().decode(errors="replace").splitlines() if line.strip())


def _major(version: str | None) -> int:
    """``'27.0'`` → 27; an unreadable version leaves the app's own minimum in charge."""
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return APP_MIN_IOS
