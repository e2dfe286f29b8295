"""shvit-bench on the tiny trained model: rows, CSV, JSON and chart, measured in each model's own runtime."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import Run, private_cache, run_cli
from PIL import Image

from convert.bench.output import CSV_FIELDS, SCHEMA
from convert.cli.bench import bench_command

RUNS = 3
ROUNDS = 2  # 3 runs in 2 rounds: shares of 2 and 1


@pytest.fixture(scope="module")
def bench(tiny: Any, tiny_exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Path, dict[str, Path]]:
    """ONNX exported by the bench itself; the TFLite int8 export of test_check placed in --out, to be reused."""
    made = tiny_exports
    out = tmp_path_factory.mktemp("bench")
    exports = out / "exports" / "auto"
    exports.mkdir(parents=True)
    for file in (made["tflite_int8"], made["tflite_int8"].with_name(made["tflite_int8"].name + ".json")):
        shutil.copy2(file, exports / file.name)
    with private_cache(tmp_path_factory):
        run = run_cli(
            bench_command,
            "--variant",
            "auto",
            "--weights",
            tiny.checkpoint,
            "--labels",
            tiny.labels_file,
            "--input-size",
            tiny.input_size,
            "--target",
            "onnx",
            "--target",
            "tflite:int8",
            "--calib",
            made["calib"],
            "--images",
            tiny.images_dir,
            "--labels-from-folders",
            "--count",
            32,
            "--runs",
            RUNS,
            "--warmup",
            1,
            "--rounds",
            ROUNDS,
            "--out",
            out,
            json_path=out / "bench.json",
        )
    return run, out, made


def rows_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in report["rows"]}


def test_bench_prints_a_table_and_writes_csv_json_png(bench: tuple[Run, Path, dict[str, Path]]) -> None:
    run, out, _ = bench
    assert run.code == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Host: ") and f"of {RUNS} runs after 1 warm-up, in {ROUNDS} interleaved rounds" in lines[0]
    assert lines[1].split()[:4] == ["variant", "model", "export", "parity"]
    assert "min ms  median ms  p90 ms  max ms  speed-up" in lines[1]
    for name in ("pytorch (reference)", "onnx fp32", "tflite int8"):
        assert any(f" {name} " in line for line in lines), name
    with open(out / "bench.csv", newline="") as f:
        records = list(csv.DictReader(f))
    assert tuple(records[0]) == CSV_FIELDS
    assert run.report is not None and run.report["schema"] == SCHEMA
    assert [r["name"] for r in records] == [r["name"] for r in run.report["rows"]]
    with Image.open(out / "bench.png") as chart:
        assert chart.format == "PNG" and chart.width >= 600 and chart.height >= 400
        assert np.asarray(chart.convert("L")).std() > 5  # something was drawn


def test_each_model_is_timed_in_its_own_runtime(bench: tuple[Run, Path, dict[str, Path]]) -> None:
    rows = rows_by_name(bench[0].report)  # type: ignore[arg-type]
    expected = {"pytorch (reference)": "PyTorch", "onnx fp32": "ONNX Runtime", "tflite int8": "LiteRT"}
    for name, runtime in expected.items():
        row = rows[name]
        assert row["runtime"].startswith(runtime) and "1 thread" in row["runtime"]
        assert row["runs"] == RUNS and row["warmup"] == 1 and row["threads"] == 1 and row["rounds"] == ROUNDS
        assert 0 < row["latency_min_ms"] <= row["latency_median_ms"] <= row["latency_p90_ms"] <= row["latency_max_ms"]
        assert len(row["latency_round_medians_ms"]) == ROUNDS


def test_speedup_is_the_median_of_per_round_ratios(bench: tuple[Run, Path, dict[str, Path]]) -> None:
    """Both medians of a ratio come from the same round; the figure reported is their median, with its range."""
    run, out, _ = bench
    rows = rows_by_name(run.report)  # type: ignore[arg-type]
    reference = rows["pytorch (reference)"]["latency_round_medians_ms"]
    timed = [row for row in rows.values() if row["latency_round_medians_ms"]]
    assert len(timed) >= 4  # the reference, onnx, tflite int8 and the plain tflite baseline
    for row in timed:
        ratios = [r / m for r, m in zip(reference, row["latency_round_medians_ms"], strict=True)]
        assert row["speedup_rounds"] == pytest.approx(ratios)
        assert row["speedup_vs_pytorch"] == pytest.approx(statistics.median(ratios))
        assert (row["speedup_min"], row["speedup_max"]) == pytest.approx((min(ratios), max(ratios)))
    with open(out / "bench.csv", newline="") as f:
        onnx = next(r for r in csv.DictReader(f) if r["name"] == "onnx fp32")
    assert [float(v) for v in onnx["speedup_rounds"].split()] == pytest.approx(rows["onnx fp32"]["speedup_rounds"], rel=1e-5)
    low, high = rows["onnx fp32"]["speedup_min"], rows["onnx fp32"]["speedup_max"]
    line = next(line for line in run.stdout.splitlines() if " onnx fp32 " in line)
    assert f"{rows['onnx fp32']['speedup_vs_pytorch']:.2f}× (" in line and "–" in line.split("×", 1)[1]
    assert low <= rows["onnx fp32"]["speedup_vs_pytorch"] <= high


def test_status_size_parity_and_accuracy_per_row(bench: tuple[Run, Path, dict[str, Path]]) -> None:
    run, _out, made = bench
    rows = rows_by_name(run.report)  # type: ignore[arg-type]
    onnx, int8, reference = rows["onnx fp32"], rows["tflite int8"], rows["pytorch (reference)"]
    assert onnx["export"] == "exported" and int8["export"] == "reused"  # identical earlier export in --out
    assert Path(int8["artifact"]).read_bytes() == made["tflite_int8"].read_bytes()
    for row in (onnx, int8):
        assert row["parity"] == "pass" and row["size_bytes"] == Path(row["artifact"]).stat().st_size
        assert row["images"] == 32 and 0 < row["cosine"] <= 1
    assert onnx["top1_accuracy"] == pytest.approx(reference["top1_accuracy"]) and onnx["top1_drop_pp"] == pytest.approx(0)
    assert int8["top1_drop_pp"] == pytest.approx(100 * (reference["top1_accuracy"] - int8["top1_accuracy"]))
    assert int8["max_rel"] > 100 * onnx["max_rel"]


def test_plain_baselines_are_rows_beside_ours(bench: tuple[Run, Path, dict[str, Path]]) -> None:
    rows = bench[0].report["rows"]  # type: ignore[index]
    baselines = [row for row in rows if row["kind"] == "baseline"]
    assert [row["target"] for row in baselines] == ["tflite"]
    assert baselines[0]["export"] == "exported" and baselines[0]["latency_median_ms"] > 0


def test_bad_targets_fail_before_any_work(tiny: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    unknown = run_cli(bench_command, "--variant", "auto", "--weights", tiny.checkpoint, "--target", "tflite:int4", "--out", out)
    assert unknown.code == 2 and "precision 'int4' is not available for tflite" in unknown.stderr
    assert unknown.stderr.strip().count("\n") == 0
    no_calib = run_cli(
        bench_command, "--variant", "auto", "--weights", tiny.checkpoint, "--input-size", 96, "--target", "tflite:int8", "--out", out
    )
    assert (
        no_calib.code == 1
        and "error: --calib: int8 calibrates activations on real images: give a folder of photos" in no_calib.stderr
        and "Traceback" not in no_calib.stderr
    )
    assert not out.exists()
    many = run_cli(bench_command, "--variant", "s1,s2", "--weights", tiny.checkpoint, "--out", out)
    assert many.code == 2 and "one checkpoint" in many.stderr


def test_results_are_json_serialisable_without_nan(bench: tuple[Run, Path, dict[str, Path]]) -> None:
    report = bench[0].report
    assert report is not None
    json.dumps(report, allow_nan=False)
    assert {"variants", "targets", "runs", "warmup", "threads", "labelled"} <= set(report["settings"])
    assert report["settings"]["labelled"] is True and report["host"]


def test_coreml_plain_baseline_is_the_packages_own_plain_conversion(tiny: Any, tmp_path: Path) -> None:
    from convert.bench.baselines import baselines_for, export_baseline
    from convert.config import ModelSpec
    from convert.coreml.ctimport import import_coremltools
    from convert.coreml.export import non_const_op_count, op_counts
    from convert.io.scratch import Scratch
    from convert.source import load_source

    (baseline,) = baselines_for(["coreml"])
    source = load_source(ModelSpec(weights=tiny.checkpoint, input_size=tiny.input_size))
    with Scratch.open() as scratch:
        path = export_baseline(baseline, source, tmp_path / baseline.filename("auto"), scratch=scratch, log=lambda _: None)
    spec = import_coremltools().utils.load_spec(str(path))
    assert spec.description.input[0].type.WhichOneof("Type") == "multiArrayType", "the baseline is the plain tensor-input conversion"
    assert non_const_op_count(op_counts(spec)) > 0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
