"""ONNX export: the artifact a user gets from `shvit-convert --target onnx`, checked in ONNX Runtime."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import calib
import shvit
from convert.cli import main as convert_main
from helpers import assert_close, recompute_bn_stats


@pytest.fixture(scope="module")
def s1_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """S1 with BN statistics measured on natural-looking images: logits depend on the image."""
    model = recompute_bn_stats(shvit.create_model("s1"), size=224, seed=3)
    path = tmp_path_factory.mktemp("ckpt") / "s1.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def exported(s1_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("onnx-out")
    proc = subprocess.run(
        [sys.executable, "-m", "convert.cli", "--variant", "s1", "--target", "onnx", "--weights", str(s1_checkpoint), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return out, proc.stderr


def test_onnx_model_takes_pixels_and_matches_pytorch_within_1e4(exported, s1_checkpoint: Path) -> None:
    out, _ = exported
    path = out / "shvit_s1_fp32.onnx"
    model = onnx.load(str(path))
    (inp,), (outp,) = model.graph.input, model.graph.output
    assert inp.name == "pixels" and [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim] == ["batch", 3, 224, 224]
    assert outp.name == "logits" and outp.type.tensor_type.shape.dim[1].dim_value == 1000
    assert not {n.op_type for n in model.graph.node} & {"BatchNormalization"}

    pixels = calib.synthetic_images(6, 224, seed=9)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"pixels": pixels.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    reference = shvit.create_model("s1", weights=s1_checkpoint)
    with torch.no_grad():
        expected = reference(torch.from_numpy(calib.normalize(pixels))).numpy()
    assert np.std(expected.argmax(1)) > 0 or np.abs(expected[0] - expected[1]).max() > 0.05 * np.abs(expected).max()
    assert_close(actual, expected, rel=1e-4, what="ONNX Runtime vs PyTorch")


def test_export_prints_the_parity_checklist_and_writes_a_sidecar(exported, s1_checkpoint: Path) -> None:
    out, stderr = exported
    assert "runtime: ONNX Runtime" in stderr
    assert "✓ max |Δ| / logit scale" in stderr and "cosine" in stderr and "top-1" in stderr
    sidecar = json.loads((out / "shvit_s1_fp32.onnx.json").read_text())
    assert sidecar["parity"]["passed"] is True and sidecar["parity"]["max_rel"] <= 1e-4
    assert sidecar["weights"]["sha256"] == shvit.weights.sha256_of(s1_checkpoint)
    assert sidecar["config"]["variant"] == "s1" and "torch" in sidecar["versions"]
    assert sorted(p.name for p in out.iterdir()) == ["shvit_s1_fp32.onnx", "shvit_s1_fp32.onnx.json"]


def test_reexport_is_refused_without_force_and_byte_identical_with_it(exported, s1_checkpoint: Path, capsys) -> None:
    out, _ = exported
    path = out / "shvit_s1_fp32.onnx"
    before = path.read_bytes()
    args = ["--variant", "s1", "--target", "onnx", "--weights", str(s1_checkpoint), "--out", str(out)]
    with pytest.raises(SystemExit) as info:
        convert_main(args)
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"shvit-convert: error: {path} already exists: pass --force to replace it, or choose another --out"]
    with pytest.raises(SystemExit) as info:
        convert_main([*args, "--force"])
    assert info.value.code == 0
    assert path.read_bytes() == before, "re-running the same export must give a byte-identical file"
    assert not [p for p in out.iterdir() if p.name.startswith(".shvit-staging")]


def test_output_path_that_is_a_file(tmp_path: Path, capsys) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(SystemExit) as info:
        convert_main(["--variant", "s1", "--target", "onnx", "--random-init", "--out", str(target)])
    assert info.value.code == 1
    assert capsys.readouterr().err.strip() == f"shvit-convert: error: output path {target} is a file: pass a folder with --out"
    assert target.read_text() == "x"
