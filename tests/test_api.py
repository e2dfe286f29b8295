"""The Python export API: ``convert.export`` on model objects and checkpoints, typed errors naming the argument,
``strict``, and the README's notebook example run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import recompute_bn_stats

import convert
import shvit
from convert.errors import ArgumentError, ToleranceError
from convert.onnx.target import TARGET as ONNX
from convert.parity import Tolerance

ROOT = Path(__file__).resolve().parents[1]
LABELS = [f"class {i}" for i in range(10)]
SMALL = shvit.SHViTConfig((32, 48, 64), (1, 2, 1), (8, 12, 16), num_classes=10, img_size=64)


@pytest.fixture(scope="module")
def s1_ten_classes() -> torch.nn.Module:
    """Full-size S1 with a new 10-class head and BN statistics of natural-looking images (outputs depend on the image)."""
    torch.manual_seed(0)
    model = shvit.create_model("s1").reset_classifier(10)
    return recompute_bn_stats(model, size=224, images=8, seed=2).eval()


@pytest.fixture(scope="module")
def small() -> torch.nn.Module:
    torch.manual_seed(1)
    return recompute_bn_stats(shvit.SHViT(SMALL), size=64, images=8).eval()


@pytest.mark.parametrize("target", ["onnx", "tflite"])
def test_export_of_an_in_memory_s1_with_a_ten_class_head(s1_ten_classes: torch.nn.Module, target: str, tmp_path: Path) -> None:
    result = convert.export(s1_ten_classes, target=target, labels=LABELS, out_dir=tmp_path)
    assert result.passed, result.parity.summary()
    assert result.path.exists() and result.path.parent == tmp_path and result.path.name.startswith("shvit_s1_10cls_fp32")
    assert set(result.files) == set(tmp_path.iterdir())
    assert result.sidecar["config"]["num_classes"] == 10 and result.sidecar["parity"]["passed"]
    assert result.parity.images == 32 and result.runtime


def test_export_from_a_checkpoint_path(small: torch.nn.Module, tmp_path: Path) -> None:
    checkpoint = tmp_path / "fine-tuned.pth"
    torch.save({"model": small.state_dict()}, checkpoint)
    result = convert.export(checkpoint, target="onnx", labels=LABELS, out_dir=tmp_path / "out")
    assert result.passed and result.path.name == "shvit_custom_10cls_fp32.onnx"
    assert result.sidecar["weights"]["sha256"] == shvit.weights.sha256_of(checkpoint)


def test_a_fused_model_exports_like_the_unfused_one(small: torch.nn.Module, tmp_path: Path) -> None:
    result = convert.export(shvit.reparameterize(small), target="onnx", labels=LABELS, out_dir=tmp_path)
    assert result.passed and result.parity.max_rel < 1e-4


@pytest.mark.parametrize(
    ("kwargs", "argument", "text"),
    [
        ({"target": "nope"}, "target", "target: unknown target 'nope'"),
        ({"target": "onnx", "precision": "int9"}, "precision", "precision 'int9' is not available for onnx"),
        ({"target": "tflite", "precision": "int8"}, "calib", "calib: int8 calibrates activations on real images: give a folder of photos"),
        (
            {"target": "coreml", "precision": "int8", "calib": "x", "min_ios": "16"},
            "min_ios",
            "min_ios: int8 (W8A8) needs iOS 17+ for its int8 activation ops, not iOS 16: target iOS 17",
        ),
        ({"target": "onnx", "labels": ["a", "b"]}, "labels", "labels has 2 labels but the model has 10 classes"),
        ({"target": "onnx", "images": "no/such/folder"}, "images", "images: folder no/such/folder does not exist"),
        ({"target": "onnx", "calib_count": 0}, "calib_count", "calib_count: must be at least 1, not 0"),
    ],
)
def test_bad_arguments_raise_typed_errors_naming_the_argument(
    small: torch.nn.Module, tmp_path: Path, kwargs: dict, argument: str, text: str
) -> None:
    with pytest.raises(ArgumentError) as caught:
        convert.export(small, out_dir=tmp_path / "out", **kwargs)
    assert caught.value.argument == argument and text in str(caught.value), str(caught.value)
    assert "--" not in str(caught.value), "from Python a message names arguments, not flags"
    assert not (tmp_path / "out").exists()


def test_a_model_of_another_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="not an SHViT") as caught:
        convert.export(torch.nn.Linear(3, 3), target="onnx", out_dir=tmp_path)
    assert caught.value.argument == "model"


def test_failed_parity_is_a_result_and_strict_raises_with_it(
    small: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ONNX.tolerances, "fp32", Tolerance(cosine=1.5))  # no artifact can meet it
    result = convert.export(small, target="onnx", labels=LABELS, out_dir=tmp_path / "a")
    assert not result.passed and result.path.exists()
    assert json.loads(Path(f"{result.path}.json").read_text())["parity"]["passed"] is False
    with pytest.raises(ToleranceError) as caught:
        convert.export(small, target="onnx", labels=LABELS, out_dir=tmp_path / "b", strict=True)
    assert isinstance(caught.value.result, convert.ExportResult) and caught.value.result.path.exists()
    assert caught.value.failures and "cosine" in caught.value.failures[0]


def test_the_api_is_silent_unless_asked(small: torch.nn.Module, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    convert.export(small, target="onnx", labels=LABELS, out_dir=tmp_path)
    out, err = capfd.readouterr()
    assert out == "" and "→" not in err and "✓" not in err


def _readme_notebook_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Fine-tuned in a notebook", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_notebook_example_runs_as_written(tmp_path: Path) -> None:
    """Offline: the released S1 is already in the cache (a stand-in with natural-image BN statistics)."""
    cache = tmp_path / "cache"
    (cache / "weights").mkdir(parents=True)
    stand_in = recompute_bn_stats(shvit.create_model("s1"), size=224, images=8, seed=5)
    torch.save({"model": stand_in.state_dict()}, cache / "weights" / "shvit_s1.pth")
    env = {**os.environ, "SHVIT_CACHE_DIR": str(cache), "SHVIT_WEIGHTS_URL": "http://127.0.0.1:9/{variant}.pth", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _readme_notebook_example()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    path, verdict = proc.stdout.split()[:2]
    assert verdict == "passed" and (tmp_path / path).is_dir() and path.endswith("shvit_s1_10cls_fp16.mlpackage")
    names = ["apple", "bicycle", "cat", "dog", "guitar", "house", "lamp", "mug", "shoe", "tree"]
    spec = json.loads((tmp_path / f"{path}.json").read_text())
    assert spec["config"]["num_classes"] == 10 and spec["export"]["op_counts"]
    from mobile_demo.coreml_spec import read_coreml

    assert list(read_coreml(tmp_path / path).class_labels) == names


def test_two_exports_at_once_from_two_threads(small: torch.nn.Module, tmp_path: Path) -> None:
    """A notebook or a server exporting twice at once: torch.onnx.export cannot run twice in one process, so the API serialises it."""
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> convert.ExportResult:
        return convert.export(small, target="onnx", labels=LABELS, out_dir=tmp_path / f"out{index}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, range(2)))
    assert all(r.passed for r in results), [r.parity.summary() for r in results]
    assert results[0].parity.max_abs == results[1].parity.max_abs
    assert results[0].path.read_bytes() == results[1].path.read_bytes()
