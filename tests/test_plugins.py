"""A target registered from outside the toolkit works everywhere: export, check, bench and the Python API.

The toy target (``tests/toy_target.py``, under 80 lines) writes the ONNX graph under its own suffix and
runs it with ONNX Runtime; nothing in the toolkit names it. Its parity runs in the same subprocess runner as the
built-in targets, which imports the plugin module by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import recompute_bn_stats, run_cli

import convert
import shvit
from convert import targets
from convert.errors import ArgumentError

SIZE = 64
CONFIG = shvit.SHViTConfig((32, 48, 64), (1, 2, 1), (8, 12, 16), num_classes=10, img_size=SIZE)
LABELS = [f"kind {i}" for i in range(10)]


@pytest.fixture(scope="module", autouse=True)
def toy_target():
    """Registered while these tests run, and unregistered after, so other tests see only the built-in targets."""
    import toy_target as module

    module.register()
    yield module
    targets.unregister(module.TARGET.name)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return recompute_bn_stats(shvit.SHViT(CONFIG), size=SIZE, images=8).eval()


@pytest.fixture(scope="module")
def checkpoint(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("toy-ckpt") / "toy.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def exported(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> convert.ExportResult:
    return convert.export(model, target="toy", labels=LABELS, out_dir=tmp_path_factory.mktemp("toy-out"), layout="nchw")


def test_the_registry_lists_the_plugin() -> None:
    assert "toy" in targets.names() and targets.suffixes()[".toy"] == "toy"
    assert targets.for_path("x.toy").name == "toy" and "layout" in targets.option_table()


def test_python_api_exports_and_checks_a_plugin_target(exported: convert.ExportResult) -> None:
    assert exported.passed, exported.parity.summary()
    assert exported.path.name == "shvit_custom_10cls_fp32.toy" and exported.path.is_file()
    assert exported.runtime.startswith("toy runtime") and exported.parity.max_rel < 1e-4
    sidecar = json.loads(exported.path.with_name(exported.path.name + ".json").read_text())
    assert sidecar["config"]["target"] == "toy" and sidecar["config"]["layout"] == "nchw" and sidecar["export"]["layout"] == "nchw"


def test_check_api_accepts_a_plugin_artifact(exported: convert.ExportResult, model: torch.nn.Module) -> None:
    report = convert.check([exported.path], reference=model, labels=LABELS, count=4)
    (row,) = report.artifacts
    assert report.passed and row.target == "toy" and row.runtime.startswith("toy runtime")


def test_shvit_convert_and_shvit_check_take_the_plugin(checkpoint: Path, tmp_path: Path) -> None:
    from convert.cli.check import check_command
    from convert.cli.convert import convert_command

    made = run_cli(convert_command, "--variant", "auto", "--weights", checkpoint, "--target", "toy", "--out", tmp_path)
    assert made.code == 0, made.stderr
    artifact = tmp_path / "shvit_custom_10cls_fp32.toy"
    assert made.stdout.strip() == str(artifact) and "✓ max |Δ| / logit scale" in made.stderr
    checked = run_cli(check_command, artifact, "--variant", "auto", "--weights", checkpoint, "--count", 4)
    assert checked.code == 0, checked.stderr
    assert "shvit_custom_10cls_fp32.toy" in checked.stdout and "PASS" in checked.stdout


def test_shvit_bench_times_the_plugin(checkpoint: Path, tmp_path: Path) -> None:
    from convert.cli.bench import bench_command

    run = run_cli(
        bench_command,
        "--variant",
        "auto",
        "--weights",
        checkpoint,
        "--target",
        "toy",
        "--no-baselines",
        "--runs",
        2,
        "--warmup",
        1,
        "--count",
        4,
        "--out",
        tmp_path,
    )
    assert run.code == 0, run.stderr
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    (toy,) = [r for r in rows if r["target"] == "toy"]
    assert toy["parity"] == "pass" and toy["latency_median_ms"] > 0 and toy["runtime"].startswith("toy runtime")


def test_options_of_other_targets_are_refused_with_the_argument_named(model: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=r"^min_ios: does not apply to the toy target") as caught:
        convert.export(model, target="toy", labels=LABELS, out_dir=tmp_path, min_ios="17")
    assert caught.value.argument == "min_ios" and not list(tmp_path.iterdir())


def test_the_toy_target_is_short() -> None:
    """A target is one short module: what it does not offer comes from TargetBase."""
    assert len(Path(__file__).with_name("toy_target.py").read_text().splitlines()) < 80
