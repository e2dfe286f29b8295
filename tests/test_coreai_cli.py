"""Core AI through the commands: shvit-convert and shvit-check on ``.aimodel`` assets, refusals in one line.

The function-level tests (S1 parity, metadata, graph size) are in test_coreai.py; here the target
goes through the registry-driven pipeline like every other, on the tiny trained model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from convert.cli import convert_command
from convert.coreai.inspect import facts
from convert.validate.check import check_command
from test_check import run_cli


def _convert(tiny: Any, out: Path, *extra: object):  # noqa: ANN202
    return run_cli(convert_command, "--variant", "auto", "--weights", tiny.checkpoint, "--input-size", tiny.input_size,
                   "--labels", tiny.labels_file, "--target", "coreai", "--out", out, *extra)


@pytest.fixture(scope="module")
def exported(tiny: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("coreai-cli")
    made = {}
    for precision in ("fp16", "fp32"):
        run = _convert(tiny, out, "--precision", precision, "--images", tiny.images_dir)
        assert run.code == 0, run.stderr
        made[precision] = Path(run.stdout.strip())
    return made


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_shvit_convert_writes_a_checked_aimodel(exported: dict[str, Path], tiny: Any, precision: str) -> None:
    path = exported[precision]
    assert path.name == f"shvit_auto_{precision}.aimodel" and path.is_dir()
    sidecar = json.loads(Path(f"{path}.json").read_text())
    assert sidecar["parity"]["passed"] and "Core AI Linux reference runtime" in sidecar["parity"]["runtime"]
    assert sidecar["config"]["target"] == "coreai" and sidecar["export"]["minimum_os"].startswith("27")
    read = facts(path)
    assert read["labels"] == tiny.class_names and read["metadata"]["precision"] == precision
    assert read["metadata"]["weights_sha256"] == sidecar["weights"]["sha256"]


def test_shvit_check_runs_an_aimodel_in_the_core_ai_runtime(exported: dict[str, Path], tiny: Any) -> None:
    run = run_cli(check_command, exported["fp16"], exported["fp32"], "--variant", "auto", "--weights", tiny.checkpoint,
                  "--images", tiny.images_dir, "--count", 8)
    assert run.code == 0, run.stderr
    assert run.stdout.count("PASS") == 2 and "shvit_auto_fp16.aimodel" in run.stdout


@pytest.mark.parametrize(("extra", "text"), [
    (("--precision", "int8-weights"), "--precision int8-weights is not available for coreai: compressed Core AI weights need coreai-opt"),
    (("--precision", "int4-weights"), "requires numpy >= 2"),
    (("--precision", "int8"), "precision 'int8' is not available for coreai: choose one of fp16, fp32"),
    (("--min-ios", "17"), "--min-ios does not apply to --target coreai"),
])
def test_what_core_ai_cannot_do_is_one_line_and_writes_nothing(tiny: Any, tmp_path: Path, extra: tuple[str, ...],
                                                               text: str) -> None:
    run = _convert(tiny, tmp_path / "out", *extra)
    lines = run.stderr.strip().splitlines()
    assert run.code == 1 and len(lines) == 1 and text in lines[0] and "Traceback" not in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()
