"""Accuracy-aware int8 through shvit-convert: the default auto mode, its report, and the options' one-line errors."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli

from convert.cli.convert import convert_command


def _convert(tiny: Any, out: Path, *extra: object):
    return run_cli(
        convert_command,
        "--variant",
        "auto",
        "--weights",
        tiny.checkpoint,
        "--input-size",
        tiny.input_size,
        "--labels",
        tiny.labels_file,
        "--target",
        "tflite",
        "--out",
        out,
        *extra,
    )


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
    artifact, sidecar, log = auto_int8
    report = sidecar["export"]["int8"]
    assert sidecar["config"]["int8_mode"] == "auto" and report["mode"] == "auto"
    assert sidecar["parity"]["passed"] and sidecar["parity"]["top1"] >= 0.9
    assert report["ops"] and all(op["own_sqnr_db"] is not None and math.isfinite(op["own_sqnr_db"]) for op in report["ops"])
    assert 0 < report["int8_mac_share"] <= 1 and report["outcome"] in ("int8", "int8-weights", "int8-missed")
    assert "int8 auto" in log and "of MACs int8" in log and "999.0 dB" not in log
    assert "int8 target: min cosine 0.98, top-1 90% on images it did not see" in log, "the user's target, not the internal aim"
    contents = sidecar["export"]["contents"]
    assert contents.startswith("int8 weights and activations" if report["outcome"] == "int8" else "weight-only int8")
    assert log.strip().splitlines()[-1].startswith(f"✓ wrote {artifact}: {contents}")


def test_an_unknown_keep_float_name_is_one_line_saying_where_the_names_are(
    tiny: Any, tmp_path: Path, auto_int8: tuple[Path, dict[str, Any], str]
) -> None:
    calib_dir = Path(auto_int8[1]["config"]["calib_dir"])
    run = _convert(tiny, tmp_path / "out", "--precision", "int8", "--calib", calib_dir, "--keep-float", "no_such_op")
    lines = run.stderr.strip().splitlines()
    assert run.code == 1 and "Traceback" not in run.stderr, run.stderr
    assert lines[-1].startswith("shvit-convert: error: --keep-float: no quantisable TFLite op named 'no_such_op'")
    assert "export.int8.ops" in lines[-1]
    assert not list((tmp_path / "out").glob("*.tflite"))


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        (("--int8-mode", "full"), "--int8-mode: applies to int8 only, not fp32"),
        (("--precision", "int8", "--calib", "x", "--int8-min-cosine", "high"), "--int8-min-cosine: 'high' is not a number"),
        (("--precision", "int8", "--calib", "x", "--int8-min-top1", "1.5"), "--int8-min-top1: 1.5 must be a fraction"),
    ],
)
def test_int8_options_are_checked_before_any_work(tiny: Any, tmp_path: Path, extra: tuple[str, ...], text: str) -> None:
    (tmp_path / "x").mkdir()
    run = _convert(tiny, tmp_path / "out", *[tmp_path / "x" if a == "x" else a for a in extra])
    lines = run.stderr.strip().splitlines()
    assert run.code == 1 and len(lines) == 1 and text in lines[0], run.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ shvit-check --per-layer


def _check(tiny: Any, *artifacts: Path, tmp_path: Path, report: bool = True):
    from convert.cli.check import check_command

    json_path, html_path = tmp_path / "per_layer.json", tmp_path / "per_layer.html"
    extra = ("--json", json_path, "--html", html_path) if report else ()
    return run_cli(
        check_command,
        *artifacts,
        "--variant",
        "auto",
        "--weights",
        tiny.checkpoint,
        "--input-size",
        tiny.input_size,
        "--images",
        tiny.images_dir,
        "--count",
        16,
        "--per-layer",
        *extra,
        json_path=json_path if report else None,
        html_path=html_path if report else None,
    )


@pytest.fixture(scope="module")
def coreml_auto_int8(
    tiny: Any, auto_int8: tuple[Path, dict[str, Any], str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """The tiny model's W8A8 Core ML package, auto mode, from the same calibration images."""
    calib_dir = Path(auto_int8[1]["config"]["calib_dir"])
    run = run_cli(
        convert_command,
        "--variant",
        "auto",
        "--weights",
        tiny.checkpoint,
        "--input-size",
        tiny.input_size,
        "--labels",
        tiny.labels_file,
        "--target",
        "coreml",
        "--precision",
        "int8",
        "--calib",
        calib_dir,
        "--images",
        tiny.images_dir,
        "--out",
        tmp_path_factory.mktemp("coreml-int8"),
    )
    assert run.code == 0, run.stderr
    assert "Quality(" not in run.stderr and "alone int8 " not in run.stderr, "selection's debug lines leaked into the output"
    artifact = Path(run.stdout.strip())
    return artifact, json.loads(Path(f"{artifact}.json").read_text())


def test_a_weight_only_fallback_says_so_in_its_last_line_and_sidecar(
    tiny: Any, auto_int8: tuple[Path, dict[str, Any], str], tmp_path: Path
) -> None:
    """An unreachable target ends weight-only: the file is named int8 as asked, and the output says what it holds."""
    run = _convert(
        tiny,
        tmp_path / "out",
        "--precision",
        "int8",
        "--calib",
        auto_int8[1]["config"]["calib_dir"],
        "--images",
        tiny.images_dir,
        "--int8-min-cosine",
        "0.99999",
        "--int8-min-top1",
        "1.0",
    )
    assert run.code == 0, run.stderr
    artifact = Path(run.stdout.strip())
    sidecar = json.loads(Path(f"{artifact}.json").read_text())
    assert sidecar["export"]["int8"]["outcome"] == "int8-weights"
    contents = sidecar["export"]["contents"]
    assert contents.startswith("weight-only int8 (activations float)") and "min cosine 0.99999, top-1 100%" in contents
    assert run.stderr.strip().splitlines()[-1].startswith(f"✓ wrote {artifact}: weight-only int8")


def _assert_per_layer(layers: dict[str, Any], sidecar: dict[str, Any]) -> None:
    """Every quantised op of the export is a row with a finite error, own errors and alone effects joined by name."""
    rows = {row["name"]: row for row in layers["ops"]}
    exported = sidecar["export"]["int8"]["ops"]
    assert layers["export_report"] and len(rows) >= len(exported)
    missing = [op["name"] for op in exported if op["name"] not in rows]
    assert not missing, f"{len(missing)} quantised ops without a per-layer row, e.g. {missing[:3]}"
    assert all(row["sqnr_db"] is None or math.isfinite(row["sqnr_db"]) for row in rows.values())
    assert all(row["sqnr_db"] is not None for row in rows.values() if row["dtype"] == "int8"), "an int8 op matched its float twin exactly"
    # int8 rounds each op by well under 1% of its range: an op far below 10 dB is compared at the wrong scale or to the wrong op
    off = {name: row["sqnr_db"] for name, row in rows.items() if row["sqnr_db"] is not None and row["sqnr_db"] < 10}
    assert not off, f"ops whose error exceeds a tenth of their signal: {off}"
    for op in exported:
        assert rows[op["name"]]["own_sqnr_db"] == op["own_sqnr_db"]
        if op["alone_int8"]:
            assert rows[op["name"]]["alone_int8_cosine"] == op["alone_int8"]["mean_cosine"]
    alone = [op for op in exported if op["alone_int8"]]
    assert alone and all(0.5 < op["alone_int8"]["mean_cosine"] <= 1.0 for op in alone)
    assert layers["worst"] and set(layers["worst"]) <= set(rows)


def test_per_layer_check_of_a_tflite_int8_export(tiny: Any, auto_int8: tuple[Path, dict[str, Any], str], tmp_path: Path) -> None:
    artifact, sidecar, _ = auto_int8
    run = _check(tiny, artifact, tmp_path=tmp_path)
    assert run.code == 0, run.stderr
    assert "experimental_preserve_all_tensors" not in run.stderr and "UserWarning" not in run.stderr, "LiteRT noise in the output"
    (layers,) = run.report["per_layer"]
    _assert_per_layer(layers, sidecar)
    first, last = layers["ops"][:5], layers["ops"][-5:]
    assert min(r["sqnr_db"] or 99 for r in first) > max(r["sqnr_db"] or 0 for r in last), "the error should grow along the depth"
    table = run.stdout.split("per-layer: ", 1)[1].splitlines()
    assert table[0].startswith(f"{artifact.name} against its float twin (fp32 TFLite")
    assert len(table) == 2 + len(layers["ops"]) + 1 and table[-1].startswith("most responsible (lowest own error): ")
    assert run.html.count('<section class="per-layer"') == 1 and "<svg" in run.html.split('<section class="per-layer"')[1]
    assert all(f">{html.escape(name)}<" in run.html for name in layers["worst"])


def test_per_layer_check_of_a_coreml_w8a8_export(tiny: Any, coreml_auto_int8: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    artifact, sidecar = coreml_auto_int8
    run = _check(tiny, artifact, tmp_path=tmp_path)
    assert run.code == 0, run.stderr
    (layers,) = run.report["per_layer"]
    assert layers["float_twin"].startswith("fp16 Core ML")
    _assert_per_layer(layers, sidecar)
    kept = set(sidecar["export"]["int8"]["keep_float"])
    assert all(row["kept_float"] == (row["name"] in kept) for row in layers["ops"] if row["kept_float"] is not None)


def test_per_layer_refuses_a_float_artifact_in_one_line(tiny: Any, tmp_path: Path) -> None:
    run = run_cli(
        convert_command,
        "--variant",
        "auto",
        "--weights",
        tiny.checkpoint,
        "--input-size",
        tiny.input_size,
        "--target",
        "onnx",
        "--out",
        tmp_path / "out",
    )
    assert run.code == 0, run.stderr
    check = _check(tiny, Path(run.stdout.strip()), tmp_path=tmp_path, report=False)
    lines = check.stderr.strip().splitlines()
    assert check.code == 2 and "Traceback" not in check.stderr
    assert lines[-1].startswith("shvit-check: error: --per-layer: compares int8 artifacts op by op; ") and "is fp32" in lines[-1]


def test_per_layer_from_python(tiny: Any, coreml_auto_int8: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    import convert
    from convert.errors import UsageError

    report = convert.check(
        [coreml_auto_int8[0]],
        reference=str(tiny.checkpoint),
        weights=None,
        images=tiny.images_dir,
        count=8,
        input_size=tiny.input_size,
        per_layer=True,
    )
    (layers,) = report.per_layer
    assert layers.rows and layers.export_report and layers.worst() and layers.table()[0].startswith("per-layer: ")
    onnx = run_cli(
        convert_command,
        "--variant",
        "auto",
        "--weights",
        tiny.checkpoint,
        "--input-size",
        tiny.input_size,
        "--target",
        "onnx",
        "--out",
        tmp_path / "out",
    )
    with pytest.raises(UsageError) as caught:
        convert.check(
            [Path(onnx.stdout.strip())], reference=str(tiny.checkpoint), weights=None, count=4, input_size=tiny.input_size, per_layer=True
        )
    assert caught.value.argument == "per_layer" and str(caught.value).startswith("per_layer: compares int8 artifacts")
    assert "--" not in str(caught.value)
