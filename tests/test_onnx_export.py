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
from helpers import assert_close, recompute_bn_stats

import calib
import shvit
from convert.cli.convert import main as convert_main


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
        [
            sys.executable,
            "-m",
            "convert.cli.convert",
            "--variant",
            "s1",
            "--target",
            "onnx",
            "--weights",
            str(s1_checkpoint),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
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
    assert err == [f"shvit-convert: error: --force: {path} already exists: pass it to replace the file, or choose another output folder"]
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
    assert capsys.readouterr().err.strip() == f"shvit-convert: error: --out: output path {target} is a file: give a folder"
    assert target.read_text() == "x"


# ------------------------------------------------------------------ fp16 and the file's own metadata


def _meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _tiny_export(tiny, out: Path, precision: str):
    import convert

    return convert.export(
        tiny.checkpoint,
        target="onnx",
        precision=precision,
        out_dir=out,
        input_size=tiny.input_size,
        labels=tiny.labels_file,
        images=tiny.images_dir,
    )


@pytest.fixture(scope="module")
def tiny_onnx(tiny, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("onnx-tiny")
    return {precision: _tiny_export(tiny, out, precision) for precision in ("fp32", "fp16")}


def test_fp16_export_passes_parity_in_onnx_runtime_at_half_the_size(tiny, tiny_onnx) -> None:
    fp32, fp16 = tiny_onnx["fp32"], tiny_onnx["fp16"]
    assert fp16.passed and fp16.precision == "fp16" and fp16.path.name.endswith("_fp16.onnx")
    assert fp16.runtime.startswith("ONNX Runtime") and fp16.tolerance.cosine is not None and fp16.parity.cosine >= fp16.tolerance.cosine
    model = onnx.load(str(fp16.path))
    floats = [i for i in model.graph.initializer if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert floats and all(i.data_type == onnx.TensorProto.FLOAT16 for i in floats), "every float weight is stored as fp16"
    (inp,), (outp,) = model.graph.input, model.graph.output
    assert inp.type.tensor_type.elem_type == outp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, "float32 pixels in, logits out"
    ratio = fp16.path.stat().st_size / fp32.path.stat().st_size
    assert 0.4 < ratio < 0.6, f"fp16 file is {ratio:.2f} of the fp32 one"

    pixels = calib.load_folder(tiny.images_dir, size=tiny.input_size, count=16, cache=False, progress=False).pixels
    session = ort.InferenceSession(str(fp16.path), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"pixels": pixels.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    assert actual.dtype == np.float32
    reference = shvit.create_model("auto", weights=tiny.checkpoint)
    with torch.no_grad():
        expected = reference(torch.from_numpy(calib.normalize(pixels))).numpy()
    cosine = np.sum(actual * expected, 1) / (np.linalg.norm(actual, axis=1) * np.linalg.norm(expected, axis=1))
    assert cosine.min() >= 0.9995 and (actual.argmax(1) == expected.argmax(1)).mean() >= 0.9
    assert_close(actual, expected, rel=0.02, what="fp16 ONNX Runtime vs PyTorch")
    as_fp32 = ort.InferenceSession(str(fp32.path), providers=["CPUExecutionProvider"]).run(
        None, {"pixels": pixels.transpose(0, 3, 1, 2).astype(np.float32)}
    )[0]
    assert not np.array_equal(actual, as_fp32), "the fp16 file must compute in fp16, not be the fp32 graph"


def test_fp16_export_is_byte_reproducible(tiny, tiny_onnx, tmp_path: Path) -> None:
    again = _tiny_export(tiny, tmp_path, "fp16")
    assert again.path.read_bytes() == tiny_onnx["fp16"].path.read_bytes()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_every_onnx_export_carries_its_labels_input_and_provenance(tiny, tiny_onnx, precision: str) -> None:
    result = tiny_onnx[precision]
    model = onnx.load(str(result.path))
    meta = _meta(result.path)
    assert meta["shvit.variant"] == "auto" and meta["shvit.precision"] == precision
    assert json.loads(meta["shvit.labels"]) == tiny.labels_file.read_text().split()
    described = json.loads(meta["shvit.input"])
    assert described["layout"] == "NCHW" and described["shape"][1:] == [3, tiny.input_size, tiny.input_size]
    assert described["range"] == [0, 255] and described["color"] == "RGB" and "inside the model" in described["normalization"]
    assert meta["shvit.weights_sha256"] == shvit.weights.sha256_of(tiny.checkpoint) == result.sidecar["weights"]["sha256"]
    assert meta["shvit.toolkit_version"] and model.producer_name == "shvit-mobile"
    assert model.producer_version == meta["shvit.toolkit_version"]
    assert f"{len(tiny.class_names)} classes" in model.doc_string and "pixels 0-255" in model.doc_string
    runtime_view = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert runtime_view.custom_metadata_map == meta


def test_the_s1_export_records_imagenet_labels_and_its_weights(exported, s1_checkpoint: Path) -> None:
    out, _ = exported
    meta = _meta(out / "shvit_s1_fp32.onnx")
    labels = json.loads(meta["shvit.labels"])
    assert len(labels) == 1000 and all(isinstance(name, str) and name for name in labels)
    assert meta["shvit.variant"] == "s1" and meta["shvit.weights_sha256"] == shvit.weights.sha256_of(s1_checkpoint)
