"""What users get wrong, fed to `shvit-convert`: one line naming the problem and the fix, a non-zero
exit, no traceback, and nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bad_inputs import PWNED_MARKER, checkpoint, image_folder, labels, read_only_dir

from convert.cli.convert import main as convert_main

CASES: list[tuple[str, Callable[[Path], list[str]], str, int]] = [
    ("unknown variant", lambda r: ["--variant", "s7", "--target", "onnx"], "Invalid value for '--variant': 's7' is not one of", 2),
    ("unknown target", lambda r: ["--variant", "s1", "--target", "tensorrt"], "Invalid value for '--target': 'tensorrt' is not one of", 2),
    (
        "unknown precision",
        lambda r: ["--variant", "s1", "--target", "tflite", "--precision", "int4"],
        "Invalid value for '--precision': 'int4'",
        2,
    ),
    (
        "precision of another target",
        lambda r: ["--variant", "s1", "--target", "onnx", "--precision", "int8"],
        "precision 'int8' is not available for onnx",
        2,
    ),
    (
        "int8 without calib (coreml)",
        lambda r: ["--variant", "s1", "--target", "coreml", "--precision", "int8"],
        "--calib: int8 calibrates activations on real images: give a folder of photos",
        1,
    ),
    (
        "int8 without calib (tflite)",
        lambda r: ["--variant", "s1", "--target", "tflite", "--precision", "int8"],
        "--calib: int8 calibrates activations on real images: give a folder of photos",
        1,
    ),
    (
        "checkpoint of another variant",
        lambda r: ["--variant", "s1", "--target", "onnx", "--weights", str(checkpoint("other_variant", r))],
        "does not fit SHViT-S1: it looks like SHViT-S2",
        1,
    ),
    (
        "checkpoint of another architecture",
        lambda r: ["--variant", "s1", "--target", "onnx", "--weights", str(checkpoint("other_architecture", r))],
        "it looks like not an SHViT checkpoint",
        1,
    ),
    (
        "truncated checkpoint",
        lambda r: ["--variant", "s1", "--target", "onnx", "--weights", str(checkpoint("truncated", r))],
        "is truncated: download it again",
        1,
    ),
    (
        "random bytes",
        lambda r: ["--variant", "s1", "--target", "onnx", "--weights", str(checkpoint("random_bytes", r))],
        "is not a PyTorch or safetensors checkpoint",
        1,
    ),
    (
        "empty checkpoint",
        lambda r: ["--variant", "s1", "--target", "onnx", "--weights", str(checkpoint("empty", r))],
        "is empty: download it again",
        1,
    ),
    (
        "pickle that runs code",
        lambda r: ["--variant", "s1", "--target", "onnx", "--weights", str(checkpoint("exploit", r))],
        "refusing to load it",
        1,
    ),
    (
        "directory as checkpoint",
        lambda r: ["--variant", "s1", "--target", "onnx", "--weights", str(checkpoint("directory", r))],
        "is a directory: pass the checkpoint file inside it",
        1,
    ),
    (
        "labels: wrong count",
        lambda r: ["--variant", "s1", "--target", "onnx", "--random-init", "--labels", str(labels("wrong_count", r, classes=1000))],
        "has 999 labels but the model has 1000 classes",
        1,
    ),
    (
        "labels: blank lines",
        lambda r: ["--variant", "s1", "--target", "onnx", "--random-init", "--labels", str(labels("blank_lines", r, classes=1000))],
        "has blank lines (line 2)",
        1,
    ),
    (
        "labels: duplicates",
        lambda r: ["--variant", "s1", "--target", "onnx", "--random-init", "--labels", str(labels("duplicates", r, classes=1000))],
        "repeats 'same' (line 2)",
        1,
    ),
    (
        "labels: missing file",
        lambda r: ["--variant", "s1", "--target", "onnx", "--random-init", "--labels", str(r / "nope.txt")],
        "labels file",
        1,
    ),
    (
        "calib: missing folder",
        lambda r: ["--variant", "s1", "--target", "onnx", "--random-init", "--calib", str(r / "nope")],
        "does not exist",
        1,
    ),
    (
        "calib: a file",
        lambda r: ["--variant", "s1", "--target", "onnx", "--random-init", "--calib", str(image_folder("file", r))],
        "is a file",
        1,
    ),
    (
        "calib: empty folder",
        lambda r: ["--variant", "s1", "--target", "onnx", "--random-init", "--calib", str(image_folder("empty", r))],
        "no image files",
        1,
    ),
    (
        "calib: all bad files",
        lambda r: ["--variant", "s1", "--target", "onnx", "--random-init", "--calib", str(image_folder("all_bad", r))],
        "unreadable",
        1,
    ),
    (
        "calib-count zero",
        lambda r: ["--variant", "s1", "--target", "onnx", "--random-init", "--calib-count", "0"],
        "--calib-count: must be at least 1, not 0",
        1,
    ),
    (
        "input size not a multiple of 32",
        lambda r: ["--variant", "s1", "--target", "onnx", "--random-init", "--input-size", "100"],
        "input size must be a multiple of 32",
        1,
    ),
]


@pytest.mark.parametrize(("name", "make_args", "message", "code"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(name: str, make_args, message: str, code: int, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    args = make_args(tmp_path)
    with pytest.raises(SystemExit) as info:
        convert_main([*args, "--out", str(out)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert info.value.code == code, err
    assert len(errors) == 1 and message in errors[0], err
    assert err.strip().splitlines()[-1] == errors[0], "the error must be the last thing printed"
    assert "Traceback" not in err
    assert not out.exists(), "nothing may be written on bad input"
    assert not PWNED_MARKER.exists()


def test_output_inside_a_read_only_directory(tmp_path: Path, capsys) -> None:
    with read_only_dir(tmp_path) as ro:
        with pytest.raises(SystemExit) as info:
            convert_main(["--variant", "s1", "--target", "onnx", "--random-init", "--out", str(ro / "exports")])
        assert info.value.code == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"shvit-convert: error: --out: output folder {ro / 'exports'} is not writable")
        assert err.endswith("give a writable folder")
        assert len(err.splitlines()) == 1 and not list(ro.iterdir())


def test_imagenet_weights_without_network_fail_fast_with_a_hint(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("socket.getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(SystemExit) as info:
        convert_main(["--variant", "s1", "--target", "onnx", "--weights", "imagenet", "--out", str(tmp_path / "out")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "error: --weights: cannot download https://github.com/" in err and "download it by hand and give its path" in err
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(tmp_path: Path, capsys) -> None:
    from shvit.errors import WeightsError

    with pytest.raises(WeightsError):
        convert_main(
            ["--variant", "s1", "--target", "onnx", "--weights", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "o"), "--debug"]
        )


def test_one_message_reads_from_python_and_from_a_command(tmp_path: Path, capsys) -> None:
    """The same error: Python leads it with the keyword at fault, the command with its flag; the text is the same."""
    import convert
    from convert.errors import ArgumentError

    with pytest.raises(ArgumentError) as caught:
        convert.export("s1", weights=None, target="onnx", calib_count=0, out_dir=tmp_path / "api")
    assert caught.value.argument == "calib_count" and str(caught.value) == "calib_count: must be at least 1, not 0"
    with pytest.raises(SystemExit):
        convert_main(["--variant", "s1", "--target", "onnx", "--random-init", "--calib-count", "0", "--out", str(tmp_path / "o")])
    assert capsys.readouterr().err.strip() == f"shvit-convert: error: --calib-count: {caught.value.message}"
    with pytest.raises(SystemExit):
        convert_main(["--variant", "s1", "--target", "onnx", "--random-init", "--out", str(tmp_path / "shvit.onnx")])
    said = capsys.readouterr().err.strip()
    assert said.startswith("shvit-convert: error: --out: ") and "out_dir" not in said, "out_dir's flag is --out"
