"""Accuracy-aware int8 through shvit-convert: the default auto mode, its report, and the options' one-line errors."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from convert.cli import convert_command
from test_check import run_cli


def _convert(tiny: Any, out: Path, *extra: object):  # noqa: ANN202
    return run_cli(convert_command, "--variant", "auto", "--weights", tiny.checkpoint, "--input-size", tiny.input_size,
                   "--labels", tiny.labels_file, "--target", "tflite", "--out", out, *extra)


@pytest.fixture(scope="module")
def auto_int8(tiny: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """The tiny model's calibrated int8 TFLite with default settings (auto), parity on held-out images."""
    import calib

    root = tmp_path_factory.mktemp("int8-cli")
    pixels, labels, names = calib.make_class_dataset(3, tiny.input_size, seed=11, num_classes=len(tiny.class_names))
    calib.write_dataset(root / "calib", pixels, labels, names)
    run = _convert(tiny, root / "out", "--precision", "int8", "--calib", root / "calib", "--images", tiny.images_dir)
    assert run.code == 0, run.stderr
    artifact = Path(run.stdout.strip())
    return artifact, json.loads(Path(f"{artifact}.json").read_text()), run.stderr


def test_default_int8_is_auto_and_reports_every_quantised_op(auto_int8: tuple[Path, dict[str, Any], str]) -> None:
    _, sidecar, log = auto_int8
    report = sidecar["export"]["int8"]
    assert sidecar["config"]["int8_mode"] == "auto" and report["mode"] == "auto"
    assert sidecar["parity"]["passed"] and sidecar["parity"]["top1"] >= 0.9
    assert report["ops"] and all(op["own_sqnr_db"] is not None and math.isfinite(op["own_sqnr_db"]) for op in report["ops"])
    assert 0 < report["int8_mac_share"] <= 1 and report["outcome"] in ("int8", "int8-weights", "int8-missed")
    assert "int8 auto" in log and "of MACs in int8" in log


def test_an_unknown_keep_float_name_is_one_line_saying_where_the_names_are(tiny: Any, tmp_path: Path,
                                                                         auto_int8: tuple[Path, dict[str, Any], str]) -> None:
    calib_dir = Path(auto_int8[1]["config"]["calib_dir"])
    run = _convert(tiny, tmp_path / "out", "--precision", "int8", "--calib", calib_dir, "--keep-float", "no_such_op")
    lines = run.stderr.strip().splitlines()
    assert run.code == 1 and "Traceback" not in run.stderr, run.stderr
    assert lines[-1].startswith("shvit-convert: error: no quantisable TFLite op named 'no_such_op' for --keep-float")
    assert "export.int8.ops" in lines[-1]
    assert not list((tmp_path / "out").glob("*.tflite"))


@pytest.mark.parametrize(("extra", "text"), [
    (("--int8-mode", "full"), "--int8-mode applies to --precision int8 only, not fp32"),
    (("--precision", "int8", "--calib", "x", "--int8-min-cosine", "high"), "--int8-min-cosine high is not a number"),
    (("--precision", "int8", "--calib", "x", "--int8-min-top1", "1.5"), "--int8-min-top1 1.5 must be a fraction"),
])
def test_int8_options_are_checked_before_any_work(tiny: Any, tmp_path: Path, extra: tuple[str, ...], text: str) -> None:
    (tmp_path / "x").mkdir()
    run = _convert(tiny, tmp_path / "out", *[tmp_path / "x" if a == "x" else a for a in extra])
    lines = run.stderr.strip().splitlines()
    assert run.code == 1 and len(lines) == 1 and text in lines[0], run.stderr
    assert not (tmp_path / "out").exists()
