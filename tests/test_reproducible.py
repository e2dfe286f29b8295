"""Re-running the same export gives the same bytes: byte-identical TFLite files, an identical Core ML weight file.

The first export is the run's shared one (``tiny_previous_exports``: the same options, made earlier, in whichever
worker process needed it first), so the two runs share neither a process nor a moment."""

from __future__ import annotations

from pathlib import Path

import pytest

import convert


def _export(tiny, target: str, out: Path) -> Path:
    return convert.export(tiny.checkpoint, target=target, out_dir=out, input_size=tiny.input_size, labels=tiny.labels_file).path


PAYLOAD = {"tflite": "", "coreml": "Data/com.apple.CoreML/weights/weight.bin"}


@pytest.mark.parametrize("target", sorted(PAYLOAD))
def test_the_same_export_twice_gives_the_same_bytes(tiny, tiny_previous_exports, tmp_path: Path, target: str) -> None:
    first = tiny_previous_exports(target, tmp_path / "a") / PAYLOAD[target]
    second = _export(tiny, target, tmp_path / "b") / PAYLOAD[target]
    assert first.read_bytes() == second.read_bytes()
