"""shvit-check on exports of the tiny trained model: figures, accuracy beside PyTorch, failures, reports."""

from __future__ import annotations

import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from helpers import Run, assert_common_export_record, private_cache, run_cli
from onnx import numpy_helper

import calib
import shvit
from convert.cli.check import check_command
from convert.errors import ConvertError
from convert.onnx.export import export_onnx
from convert.validate.accuracy import UNKNOWN, accuracy, from_label_map
from convert.validate.report import SCHEMA, STATUSES
from shvit.config import SHViTConfig


@pytest.fixture(scope="module")
def exports(tiny: Any, tiny_exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The good exports, and three that must not pass: truncated, tampered weights, another input size."""
    paths = dict(tiny_exports)
    broken = tmp_path_factory.mktemp("broken")
    data = paths["onnx"].read_bytes()
    paths["truncated"] = broken / "truncated.onnx"
    paths["truncated"].write_bytes(data[: len(data) // 3])
    model = onnx.load(str(paths["onnx"]))
    conv = next(i for i in model.graph.initializer if len(i.dims) == 4 and i.dims[0] >= 16)
    conv.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(conv) * 1.3, conv.name))
    paths["tampered"] = broken / "tampered.onnx"
    onnx.save(model, str(paths["tampered"]))
    paths["size128"] = broken / "at128.onnx"  # no sidecar: the size is read from the graph itself
    deploy = shvit.reparameterize(shvit.create_model("auto", weights=tiny.checkpoint))
    export_onnx(shvit.PixelInput(deploy).eval(), paths["size128"], input_size=128, simplify=False)
    return paths


def test_onnx_and_tflite_sidecars_record_input_and_output_alike(exports: dict[str, Path], tiny: Any) -> None:
    """The checker reads the class count of an export from ``export.output.classes`` whatever its target."""
    for name in ("onnx", "tflite_int8"):
        assert_common_export_record(json.loads(Path(f"{exports[name]}.json").read_text()), classes=len(tiny.class_names))


@pytest.fixture(scope="module")
def good_run(exports: dict[str, Path], tiny: Any, tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("good-run")
    with private_cache(tmp_path_factory):
        return run_cli(
            check_command,
            exports["onnx"],
            exports["tflite_int8"],
            "--variant",
            "auto",
            "--weights",
            tiny.checkpoint,
            "--images",
            tiny.images_dir,
            "--labels-from-folders",
            "--json",
            folder / "report.json",
            "--html",
            folder / "report.html",
            json_path=folder / "report.json",
            html_path=folder / "report.html",
        )


@pytest.fixture(scope="module")
def bad_run(exports: dict[str, Path], tiny: Any, tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("bad-run")
    with private_cache(tmp_path_factory):
        return run_cli(
            check_command,
            exports["onnx"],
            exports["truncated"],
            exports["tampered"],
            exports["size128"],
            "--variant",
            "auto",
            "--weights",
            tiny.checkpoint,
            "--images",
            tiny.images_dir,
            "--labels-from-folders",
            "--json",
            folder / "report.json",
            "--html",
            folder / "report.html",
            json_path=folder / "report.json",
            html_path=folder / "report.html",
        )


def pytorch_accuracy(tiny: Any) -> float:
    """Top-1 of the tiny model on its held-out folder, computed here independently of the checker."""
    images = calib.load_folder(tiny.images_dir, size=tiny.input_size, progress=False, cache=False)
    truth = np.asarray([tiny.class_names.index(images.class_names[i]) for i in images.labels])
    model = shvit.create_model("auto", weights=tiny.checkpoint)
    with torch.no_grad():
        predicted = model(torch.from_numpy(images.normalized())).argmax(1).numpy()
    return float(np.mean(predicted == truth))


def test_good_exports_pass_with_exit_zero(good_run: Run) -> None:
    assert good_run.code == 0, good_run.stderr
    assert good_run.report is not None and good_run.report["passed"] is True
    assert [a["status"] for a in good_run.report["artifacts"]] == ["pass", "pass"]
    assert "✓ all 2 artifacts within tolerance" in good_run.stdout
    assert {a["runtime"].split()[0] for a in good_run.report["artifacts"]} == {"ONNX", "LiteRT"}


def test_accuracy_of_pytorch_and_each_artifact_side_by_side(good_run: Run, tiny: Any, exports: dict[str, Path]) -> None:
    report = good_run.report
    assert report is not None
    expected = pytorch_accuracy(tiny)
    assert report["reference"]["accuracy"]["top1"] == pytest.approx(expected)
    assert report["images"]["labelled"] == report["images"]["count"] == 8 * 12
    assert "matched to the model's class names" in report["images"]["mapping"]
    fp32 = good_run.artifact(exports["onnx"].name)
    assert fp32["accuracy"]["top1"] == pytest.approx(expected) and fp32["accuracy"]["top1_drop_pp"] == pytest.approx(0)
    for artifact in report["artifacts"]:
        acc = artifact["accuracy"]
        assert acc["top1_drop_pp"] == pytest.approx(100 * (expected - acc["top1"]))
        assert f"{100 * acc['top1']:.1f}% ({0.0 - acc['top1_drop_pp']:+.1f})" in good_run.row(artifact["name"])
    assert f"{100 * expected:.1f}%" in good_run.row("PyTorch (reference)")


def test_int8_damage_is_visible_and_within_tolerance(good_run: Run, exports: dict[str, Path]) -> None:
    int8, fp32 = good_run.artifact(exports["tflite_int8"].name), good_run.artifact(exports["onnx"].name)
    assert int8["precision"] == "int8" and int8["precision_source"] == "sidecar"
    assert int8["passed"] and int8["tolerance"] == {"cosine": 0.98, "top1": 0.90}
    assert int8["parity"]["max_rel"] > 100 * fp32["parity"]["max_rel"]  # quantisation shows in the figures
    assert int8["parity"]["cosine"] < fp32["parity"]["cosine"]
    assert int8["accuracy"]["top1"] > 0.5


def assert_schema(report: dict[str, Any]) -> None:
    """The JSON report's contract: keys and types every consumer may rely on."""
    assert report["schema"] == SCHEMA and isinstance(report["passed"], bool)
    assert set(report["summary"]) == set(STATUSES) and sum(report["summary"].values()) == len(report["artifacts"])
    assert {"variant", "input_size", "num_classes", "weights", "weights_sha256", "runtime", "accuracy"} <= set(report["reference"])
    assert {"description", "source", "count", "labels", "mapping", "labelled"} <= set(report["images"])
    for a in report["artifacts"]:
        assert {
            "path",
            "name",
            "target",
            "precision",
            "precision_source",
            "status",
            "passed",
            "reason",
            "runtime",
            "size_bytes",
            "seconds",
            "tolerance",
            "checks",
            "parity",
            "accuracy",
            "notes",
        } <= set(a)
        assert a["status"] in STATUSES and a["passed"] == (a["status"] == "pass")
        assert a["target"] in ("onnx", "tflite", "coreml") and isinstance(a["size_bytes"], int)
        if a["parity"] is not None:
            assert {"images", "max_abs", "mean_abs", "max_rel", "cosine", "psnr_db", "top1", "top5"} <= set(a["parity"])
            assert all(isinstance(c["passed"], bool) for c in a["checks"]) and a["checks"]
        else:
            assert a["reason"] and "\n" not in a["reason"]
        if a["accuracy"] is not None:
            assert {"top1", "top5", "images", "top1_drop_pp", "top5_drop_pp"} <= set(a["accuracy"])


def test_json_reports_follow_the_schema(good_run: Run, bad_run: Run) -> None:
    for run in (good_run, bad_run):
        assert run.report is not None
        assert_schema(run.report)
        json.dumps(run.report, allow_nan=False)  # strict JSON: no NaN/Infinity


def test_corrupted_artifacts_fail_and_the_others_are_still_checked(bad_run: Run, exports: dict[str, Path]) -> None:
    assert bad_run.code == 1
    assert "Traceback" not in bad_run.stderr
    statuses = {a["name"]: a["status"] for a in bad_run.report["artifacts"]}  # type: ignore[index]
    assert statuses == {
        exports["onnx"].name: "pass",
        "truncated.onnx": "crash",
        "tampered.onnx": "fail",
        exports["size128"].name: "mismatch",
    }
    assert bad_run.report["summary"] == {"pass": 1, "fail": 1, "crash": 1, "mismatch": 1, "error": 0}  # type: ignore[index]
    assert " CRASH " in bad_run.row("truncated.onnx") and "Protobuf" in bad_run.row("truncated.onnx")
    assert " FAIL " in bad_run.row("tampered.onnx") and "✗" in bad_run.row("tampered.onnx")
    assert " PASS " in bad_run.row(exports["onnx"].name)
    assert "✗ 3 of 4 artifacts failed" in bad_run.stdout
    tampered = bad_run.artifact("tampered.onnx")
    assert tampered["precision_source"] == "inferred from the graph (no sidecar)"
    assert not tampered["checks"][0]["passed"] and tampered["parity"]["max_rel"] > 1e-3


def test_artifact_of_another_input_size_gets_a_one_line_reason(bad_run: Run, exports: dict[str, Path]) -> None:
    reason = bad_run.artifact(exports["size128"].name)["reason"]
    assert "model input is 128×128 but the check runs at 96×96" in reason and "check it separately at input size 128" in reason
    assert "\n" not in reason and reason in bad_run.row(exports["size128"].name)


def test_artifact_of_another_variant_is_named(exports: dict[str, Path], tmp_path: Path) -> None:
    other = shvit.SHViT(SHViTConfig(embed_dim=(16, 24, 32), depth=(1, 1, 1), partial_dim=(4, 6, 8), num_classes=10, img_size=96))
    torch.save({"model": other.state_dict()}, tmp_path / "other.pth")
    run = run_cli(
        check_command,
        exports["onnx"],
        exports["tflite_int8"],
        "--variant",
        "auto",
        "--weights",
        tmp_path / "other.pth",
        "--count",
        "4",
        "--json",
        tmp_path / "r.json",
        json_path=tmp_path / "r.json",
    )
    assert run.code == 1 and run.report is not None
    for path in (exports["onnx"], exports["tflite_int8"]):
        artifact = run.artifact(path.name)
        assert artifact["status"] == "mismatch"
        assert artifact["reason"].startswith("model outputs 8 classes, the reference 10: exported from another variant or head")


def test_artifact_whose_sidecar_names_another_variant_is_named(exports: dict[str, Path], tmp_path: Path) -> None:
    torch.save({"model": shvit.create_model("s1").state_dict()}, tmp_path / "s1.pth")
    artifact = tmp_path / "model.onnx"
    shutil.copy(exports["onnx"], artifact)
    sidecar = json.loads(exports["onnx"].with_name(exports["onnx"].name + ".json").read_text())
    sidecar["config"]["variant"] = "s2"
    (tmp_path / "model.onnx.json").write_text(json.dumps(sidecar))
    run = run_cli(
        check_command,
        artifact,
        "--variant",
        "s1",
        "--weights",
        tmp_path / "s1.pth",
        "--input-size",
        96,
        "--count",
        2,
        "--json",
        tmp_path / "r.json",
        json_path=tmp_path / "r.json",
    )
    assert run.code == 1 and run.report is not None
    assert run.artifact("model.onnx")["reason"] == "exported from SHViT-S2 (sidecar), checked against SHViT-S1: check it against variant s2"


def test_without_images_generated_ones_are_used_and_said(exports: dict[str, Path], tiny: Any) -> None:
    run = run_cli(check_command, exports["onnx"], "--variant", "auto", "--weights", tiny.checkpoint, "--count", "6")
    assert run.code == 0, run.stderr
    assert "Images: 6 generated natural-looking images (no images given: a folder of your own photos makes a truer check)" in run.stdout
    assert "acc@1" not in run.stdout  # no labels, no accuracy columns


class _Page(HTMLParser):
    """Rows of the results table (by data-artifact) and the chart's text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, tuple[str, list[str]]] = {}
        self.chart_text: list[str] = []
        self._row: str | None = None
        self._in: list[str] = []
        self.svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self._in.append(tag)
        if tag == "tr" and attributes.get("data-artifact"):
            self._row = attributes["data-artifact"]
            self.rows[self._row] = (attributes.get("class") or "", [])
        elif tag == "td" and self._row:
            self.rows[self._row][1].append("")
        elif tag == "svg":
            self.svg += 1

    def handle_endtag(self, tag: str) -> None:
        while self._in and self._in.pop() != tag:
            pass
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row and self._in and self._in[-1] == "td":
            self.rows[self._row][1][-1] += data
        elif "text" in self._in and "svg" in self._in:
            self.chart_text.append(data)


@pytest.mark.parametrize("which", ["good", "bad"])
def test_html_report_holds_the_table_and_the_chart(which: str, good_run: Run, bad_run: Run) -> None:
    run = good_run if which == "good" else bad_run
    assert run.html is not None and run.report is not None
    page = _Page()
    page.feed(run.html)
    page.close()
    assert run.html.lstrip().startswith("<!DOCTYPE html>") and page.svg >= 1
    assert set(page.rows) == {"PyTorch (reference)"} | {a["name"] for a in run.report["artifacts"]}
    for a in run.report["artifacts"]:
        klass, cells = page.rows[a["name"]]
        assert klass == a["status"] and cells[2] == a["status"].upper()
        if a["parity"]:
            assert cells[5] == f"{a['parity']['cosine']:.6f}"
        else:
            assert cells[-1] == a["reason"]
        assert a["name"] in page.chart_text
    assert "Parity with PyTorch per artifact" in " ".join(page.chart_text)


def test_bad_command_lines_fail_fast_with_one_line(tiny: Any, exports: dict[str, Path], tmp_path: Path) -> None:
    missing = run_cli(
        check_command, tmp_path / "nope.onnx", "--variant", "auto", "--weights", tiny.checkpoint, "--json", tmp_path / "r.json"
    )
    assert missing.code == 1 and missing.stderr.strip().count("\n") == 0 and "nope.onnx does not exist" in missing.stderr
    assert not (tmp_path / "r.json").exists()
    no_images = run_cli(check_command, exports["onnx"], "--variant", "auto", "--weights", tiny.checkpoint, "--labels-from-folders")
    assert no_images.code == 2 and "error: --images: the images' classes were given, but no folder of images" in no_images.stderr
    folder_json = run_cli(check_command, exports["onnx"], "--variant", "auto", "--weights", tiny.checkpoint, "--json", tmp_path)
    assert folder_json.code == 1 and "is a folder" in folder_json.stderr


def test_labels_file_maps_images_by_path_name_or_stem(tmp_path: Path) -> None:
    root = tmp_path / "images"
    paths = [root / "a" / "x1.jpg", root / "b" / "x2.jpg", root / "x3.png", root / "x4.png"]
    mapping = tmp_path / "labels.csv"
    mapping.write_text("file,label\na/x1.jpg,dog\nx2.jpg,cat\nx3,dog\n")
    truth = from_label_map(mapping, paths, root=root, class_names=["cat", "dog"], sorted_order=False)
    assert truth.labels.tolist() == [1, 0, 1, UNKNOWN] and truth.known == 3
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
    result = accuracy(logits, truth)
    assert result.images == 3 and result.top1 == pytest.approx(2 / 3) and math.isclose(result.top5, 1.0)
    strangers = tmp_path / "strangers.txt"
    strangers.write_text("x1.jpg n0001\nx2.jpg n0002\n")
    with pytest.raises(ConvertError, match="neither the model's class names nor class indices"):
        from_label_map(strangers, paths, root=root, class_names=["cat", "dog"], sorted_order=False)
    synsets = from_label_map(strangers, paths, root=root, class_names=["cat", "dog"], sorted_order=True)
    assert synsets.labels.tolist()[:2] == [0, 1] and "sorted order" in synsets.mapping
