"""What users get wrong, fed to shvit-check, shvit-bench and shvit-demo (shvit-convert's own table is
test_cli_errors.py): one line naming the problem and the fix, a non-zero exit, no traceback unless
--debug, and nothing written. Then what the machine does to every command: a read-only folder, a
file it may not read, a disk that fills up.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bad_inputs import (
    PWNED_MARKER,
    assert_one_error_line,
    checkpoint,
    files_under,
    image_folder,
    labels,
    read_only_dir,
    small_disk,
    unprivileged,
    unreadable,
)
from helpers import run_cli, tiny_convert_args

import calib
from convert.cli.bench import bench_command
from convert.cli.check import check_command
from convert.cli.convert import convert_command
from convert.cli.demo import demo_group
from convert.io.staging import STAGING_PREFIX

MODULES = {
    "shvit-convert": "convert.cli.convert",
    "shvit-check": "convert.cli.check",
    "shvit-bench": "convert.cli.bench",
    "shvit-demo": "convert.cli.demo",
}
COMMANDS = {"shvit-convert": convert_command, "shvit-check": check_command, "shvit-bench": bench_command, "shvit-demo": demo_group}


@dataclass
class Inputs:
    """A tiny trained model, its exports, and a folder the case may write its bad inputs into."""

    root: Path
    tiny: Any
    onnx: Path
    tflite: Path
    mlpackage: Path
    calib: Path

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def ckpt(self) -> str:
        return str(self.tiny.checkpoint)

    def bench(self, *extra: object, out: Path | None = None) -> list[object]:
        """A quick, valid shvit-bench command line for the tiny model, plus ``extra``."""
        return [
            "--variant",
            "auto",
            "--weights",
            self.ckpt,
            "--input-size",
            96,
            "--runs",
            1,
            "--warmup",
            0,
            "--no-baselines",
            "--out",
            out or self.out,
            *extra,
        ]


@pytest.fixture(scope="module")
def exports(
    tiny_exports: dict[str, Path], tiny_previous_exports: Callable[[str, Path], Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    made = dict(tiny_exports)
    made["mlpackage"] = tiny_previous_exports("coreml", tmp_path_factory.mktemp("hardening-coreml"))
    return made


@pytest.fixture
def inputs(tiny: Any, exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Inputs:
    """Offline as well as away from the internet: a download fails at the name lookup, as on a plane."""

    def offline(*_args: object, **_kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    return Inputs(tmp_path, tiny, exports["onnx"], exports["tflite_int8"], exports["mlpackage"], exports["calib"])


Case = tuple[str, Callable[[Inputs], list[object]], str, int]


def _check(i: Inputs, *extra: object, variant: str = "auto", weights: object = None) -> list[object]:
    return [i.onnx, "--variant", variant, "--weights", weights or i.ckpt, "--json", i.out / "report.json", *extra]


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _file(path: Path, data: bytes = b"x") -> Path:
    path.write_bytes(data)
    return path


def _unrelated(i: Inputs) -> Path:
    """A user's own folder that happens to be named as --out."""
    folder = _folder(i.root / "mine")
    _file(folder / "notes.txt", b"keep me")
    return folder


CHECK_CASES: list[Case] = [
    ("unknown variant", lambda i: _check(i, variant="s7"), "Invalid value for '--variant': 's7' is not one of", 2),
    ("artifact missing", lambda i: [i.root / "nope.onnx", *_check(i)[1:]], "nope.onnx does not exist", 1),
    (
        "not an artifact",
        lambda i: [_file(i.root / "notes.txt"), *_check(i)[1:]],
        "unknown artifact type .txt: pass .onnx, .tflite, .mlpackage or .aimodel files",
        1,
    ),
    ("a folder named .onnx", lambda i: [_folder(i.root / "model.onnx"), *_check(i)[1:]], "is a folder, not a .onnx file", 1),
    ("the same artifact twice", lambda i: [i.onnx, *_check(i)], "the same artifact is listed twice", 1),
    (
        "checkpoint of another variant",
        lambda i: _check(i, variant="s1", weights=checkpoint("other_variant", i.root)),
        "does not fit SHViT-S1: it looks like SHViT-S2",
        1,
    ),
    (
        "checkpoint of another architecture",
        lambda i: _check(i, variant="s1", weights=checkpoint("other_architecture", i.root)),
        "it looks like not an SHViT checkpoint",
        1,
    ),
    (
        "truncated checkpoint",
        lambda i: _check(i, variant="s1", weights=checkpoint("truncated", i.root)),
        "is truncated: download it again",
        1,
    ),
    ("random bytes", lambda i: _check(i, weights=checkpoint("random_bytes", i.root)), "is not a PyTorch or safetensors checkpoint", 1),
    ("empty checkpoint", lambda i: _check(i, weights=checkpoint("empty", i.root)), "is empty: download it again", 1),
    ("pickle that runs code", lambda i: _check(i, weights=checkpoint("exploit", i.root)), "refusing to load it", 1),
    (
        "directory as checkpoint",
        lambda i: _check(i, weights=checkpoint("directory", i.root)),
        "is a directory: pass the checkpoint file",
        1,
    ),
    ("auto without a checkpoint", lambda i: _check(i, weights="imagenet"), "'auto' infers the architecture from a checkpoint file", 1),
    ("imagenet weights offline", lambda i: _check(i, variant="s1", weights="imagenet"), "--weights: cannot download", 1),
    (
        "labels: wrong count",
        lambda i: _check(i, "--labels", labels("wrong_count", i.root, classes=8)),
        "has 7 labels but the model has 8",
        1,
    ),
    ("labels: blank lines", lambda i: _check(i, "--labels", labels("blank_lines", i.root, classes=8)), "has blank lines (line 2)", 1),
    ("labels: duplicates", lambda i: _check(i, "--labels", labels("duplicates", i.root, classes=8)), "repeats 'same' (line 2)", 1),
    ("labels: missing file", lambda i: _check(i, "--labels", i.root / "nope.txt"), "does not exist or is not a file", 1),
    ("images: missing folder", lambda i: _check(i, "--images", image_folder("missing", i.root)), "--images: folder", 1),
    ("images: a file", lambda i: _check(i, "--images", image_folder("file", i.root)), "is a file: pass a folder of images", 1),
    ("images: empty folder", lambda i: _check(i, "--images", image_folder("empty", i.root)), "no image files", 1),
    ("images: all bad files", lambda i: _check(i, "--images", image_folder("all_bad", i.root)), "all 2 files were unreadable", 1),
    (
        "labels from folders without images",
        lambda i: _check(i, "--labels-from-folders"),
        "--images: the images' classes were given, but no folder of images",
        2,
    ),
    (
        "labels-file: missing",
        lambda i: _check(i, "--images", i.tiny.images_dir, "--labels-file", i.root / "nope.csv"),
        "does not exist or is not a file",
        1,
    ),
    ("negative count", lambda i: _check(i, "--count", -1), "--count: must be 0 (all images) or more", 2),
    ("zero threads", lambda i: _check(i, "--threads", 0), "--threads: must be at least 1", 2),
    ("input size not a multiple of 32", lambda i: _check(i, "--input-size", 100), "input size must be a multiple of 32", 1),
    ("report path is a folder", lambda i: [*_check(i)[:-2], "--json", _folder(i.root / "reports")], "is a folder: pass a file name", 1),
    ("report inside a file", lambda i: [*_check(i)[:-2], "--html", image_folder("file", i.root) / "r.html"], "cannot write --html", 1),
]

BENCH_CASES: list[Case] = [
    ("unknown variant", lambda i: ["--variant", "s7", "--out", i.out], "unknown variant 's7'", 2),
    ("unknown target", lambda i: i.bench("--target", "tensorrt"), "unknown target 'tensorrt'", 1),
    ("unknown precision", lambda i: i.bench("--target", "tflite:int4"), "precision 'int4' is not available for tflite", 2),
    ("precision of another target", lambda i: i.bench("--target", "onnx:int8"), "precision 'int8' is not available for onnx", 2),
    (
        "int8 without calib",
        lambda i: i.bench("--target", "tflite:int8"),
        "--calib: int8 calibrates activations on real images: give a folder of photos",
        1,
    ),
    (
        "calib: missing folder",
        lambda i: i.bench("--target", "tflite:int8", "--calib", image_folder("missing", i.root)),
        "does not exist",
        1,
    ),
    ("calib: a file", lambda i: i.bench("--target", "coreml:int8", "--calib", image_folder("file", i.root)), "is a file", 1),
    ("calib: empty folder", lambda i: i.bench("--target", "tflite:int8", "--calib", image_folder("empty", i.root)), "no image files", 1),
    (
        "calib: all bad files",
        lambda i: i.bench("--target", "tflite:int8", "--calib", image_folder("all_bad", i.root)),
        "all 2 files were unreadable",
        1,
    ),
    (
        "calib-count zero",
        lambda i: i.bench("--target", "tflite:int8", "--calib", i.calib, "--calib-count", 0),
        "--calib-count: must be at least 1",
        1,
    ),
    (
        "checkpoint of another variant",
        lambda i: ["--variant", "s1", "--weights", checkpoint("other_variant", i.root), "--out", i.out],
        "does not fit SHViT-S1: it looks like SHViT-S2",
        1,
    ),
    (
        "checkpoint of another architecture",
        lambda i: ["--variant", "s1", "--weights", checkpoint("other_architecture", i.root), "--out", i.out],
        "it looks like not an SHViT checkpoint",
        1,
    ),
    (
        "truncated checkpoint",
        lambda i: ["--variant", "s1", "--weights", checkpoint("truncated", i.root), "--out", i.out],
        "is truncated",
        1,
    ),
    ("random bytes", lambda i: ["--variant", "s1", "--weights", checkpoint("random_bytes", i.root), "--out", i.out], "is not a PyTorch", 1),
    ("empty checkpoint", lambda i: ["--variant", "s1", "--weights", checkpoint("empty", i.root), "--out", i.out], "is empty", 1),
    (
        "pickle that runs code",
        lambda i: ["--variant", "s1", "--weights", checkpoint("exploit", i.root), "--out", i.out],
        "refusing to load it",
        1,
    ),
    (
        "directory as checkpoint",
        lambda i: ["--variant", "s1", "--weights", checkpoint("directory", i.root), "--out", i.out],
        "is a directory",
        1,
    ),
    ("one checkpoint for two variants", lambda i: ["--variant", "s1,s2", "--weights", i.ckpt, "--out", i.out], "is one checkpoint", 2),
    (
        "auto with random init",
        lambda i: ["--variant", "auto", "--random-init", "--out", i.out],
        "--variant: auto infers the architecture from a checkpoint, so it cannot go with random initialisation",
        2,
    ),
    (
        "auto without a checkpoint",
        lambda i: ["--variant", "auto", "--out", i.out],
        "'auto' infers the architecture from a checkpoint file",
        1,
    ),
    ("imagenet weights offline", lambda i: ["--variant", "s1", "--target", "onnx", "--out", i.out], "--weights: cannot download", 1),
    ("labels: wrong count", lambda i: i.bench("--labels", labels("wrong_count", i.root, classes=8)), "has 7 labels but the model has 8", 1),
    ("labels: blank lines", lambda i: i.bench("--labels", labels("blank_lines", i.root, classes=8)), "has blank lines", 1),
    ("images: missing folder", lambda i: i.bench("--images", image_folder("missing", i.root)), "--images: folder", 1),
    ("images: empty folder", lambda i: i.bench("--images", image_folder("empty", i.root)), "no image files", 1),
    ("zero runs", lambda i: i.bench("--runs", 0), "--runs: must be at least 1", 2),
    ("zero threads", lambda i: i.bench("--threads", 0), "--threads: must be at least 1", 2),
    ("output path is a file", lambda i: i.bench(out=image_folder("file", i.root)), "is a file: give a folder", 1),
    ("output inside a file", lambda i: i.bench(out=image_folder("file", i.root) / "bench"), "which is a file", 1),
    ("input size not a multiple of 32", lambda i: i.bench("--input-size", 100), "input size must be a multiple of 32", 1),
]


DEMO_CASES: list[Case] = [
    ("unknown platform", lambda i: ["windows", "--model", i.tflite, "--out", i.out], "No such command 'windows'", 2),
    ("no model", lambda i: ["android", "--out", i.out], "Missing option '--model'", 2),
    ("model missing", lambda i: ["android", "--model", i.root / "nope.tflite", "--out", i.out], "does not exist", 1),
    ("ONNX model for Android", lambda i: ["android", "--model", i.onnx, "--out", i.out], "is not a TFLite file", 1),
    ("TFLite model for iOS", lambda i: ["ios", "--model", i.tflite, "--out", i.out], "is not a Core ML package", 1),
    ("a folder as the model", lambda i: ["android", "--model", i.root, "--out", i.out], "is not a TFLite file", 1),
    ("empty .tflite", lambda i: ["android", "--model", _file(i.root / "e.tflite", b""), "--out", i.out], "not a TFLite flatbuffer", 1),
    (
        "random bytes .tflite",
        lambda i: ["android", "--model", _file(i.root / "r.tflite", os.urandom(4096)), "--out", i.out],
        "not a TFLite flatbuffer",
        1,
    ),
    (
        "truncated .tflite",
        lambda i: ["android", "--model", _file(i.root / "t.tflite", i.tflite.read_bytes()[:4096]), "--out", i.out],
        "is a damaged TFLite file",
        1,
    ),
    (
        "a folder named .mlpackage",
        lambda i: ["ios", "--model", _folder(i.root / "m.mlpackage"), "--out", i.out],
        "is not a readable Core ML package",
        1,
    ),
    (
        "output path is a file",
        lambda i: ["ios", "--model", i.mlpackage, "--out", image_folder("file", i.root)],
        "is a file: give a folder",
        1,
    ),
    ("output inside a file", lambda i: ["android", "--model", i.tflite, "--out", image_folder("file", i.root) / "app"], "cannot create", 1),
    (
        "existing folder without --force",
        lambda i: ["android", "--model", i.tflite, "--out", _unrelated(i)],
        "already exists and is not empty: pass it to replace the folder",
        1,
    ),
    (
        "--force on a folder it did not write",
        lambda i: ["android", "--model", i.tflite, "--out", _unrelated(i), "--force"],
        "is not a demo written by shvit-demo",
        1,
    ),
    (
        "output that contains the model",
        lambda i: ["android", "--model", i.tflite, "--out", i.tflite.parent, "--force"],
        "contains the model",
        1,
    ),
]

TABLE = (
    [("shvit-check", *case) for case in CHECK_CASES]
    + [("shvit-bench", *case) for case in BENCH_CASES]
    + [("shvit-demo", *case) for case in DEMO_CASES]
)


@pytest.mark.parametrize(("prog", "name", "make_args", "message", "code"), TABLE, ids=[f"{t[0]}: {t[1]}" for t in TABLE])
def test_bad_input_gets_one_clear_line_and_nothing_is_written(
    prog: str,
    name: str,
    make_args: Callable[[Inputs], list[object]],
    message: str,
    code: int,
    inputs: Inputs,
) -> None:
    args = make_args(inputs)
    before = files_under(inputs.root)
    result = run_cli(COMMANDS[prog], *args)
    assert result.code == code, result.stderr
    assert_one_error_line(result.stderr, prog=prog, message=message)
    assert files_under(inputs.root) == before, "a refused command must write nothing"
    assert not PWNED_MARKER.exists()


# --- --debug: the traceback, on request, from the real console entry point ----------------------------


@pytest.mark.parametrize("prog", list(MODULES))
def test_debug_shows_the_traceback(prog: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pth"
    args = {
        "shvit-convert": ["--variant", "s1", "--target", "onnx", "--weights", missing, "--out", tmp_path / "out"],
        "shvit-check": [tmp_path / "missing.onnx", "--variant", "s1", "--weights", missing],
        "shvit-bench": ["--variant", "s1", "--target", "onnx", "--weights", missing, "--out", tmp_path / "out"],  # no Core ML to load
        "shvit-demo": ["android", "--model", tmp_path / "missing.tflite", "--out", tmp_path / "out"],
    }[prog]
    plain = subprocess.run([sys.executable, "-m", MODULES[prog], *map(str, args)], capture_output=True, text=True, timeout=120)
    debug = subprocess.run([sys.executable, "-m", MODULES[prog], *map(str, args), "--debug"], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr, plain.stderr
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr, debug.stderr
    said = plain.stderr.strip().splitlines()[-1].split("error: ", 1)[1]
    message = re.sub(r"^--[a-z-]+: ", "", said)  # the command leads with the culprit's flag, Python with its keyword
    assert message in debug.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


# --- the machine: read-only folders, unreadable inputs, a full disk --------------------------------------


def test_read_only_output_folders_are_refused_before_any_work(inputs: Inputs) -> None:
    with read_only_dir(inputs.root) as ro:
        cases = [
            ("shvit-check", [*_check(inputs)[:-2], "--json", ro / "r.json"], f"cannot write --json {ro / 'r.json'}"),
            ("shvit-bench", inputs.bench(out=ro / "bench"), f"output folder {ro / 'bench'} is not writable"),
            ("shvit-demo", ["android", "--model", inputs.tflite, "--out", ro / "app"], f"cannot create {ro / 'app'}"),
        ]
        for prog, args, message in cases:
            result = run_cli(COMMANDS[prog], *args)
            assert result.code == 1, result.stderr
            assert_one_error_line(result.stderr, prog=prog, message=message)
            assert not list(ro.iterdir())


def _run_as_user(prog: str, *args: object) -> subprocess.CompletedProcess[str]:
    command = unprivileged([sys.executable, "-m", MODULES[prog], *map(str, args)])
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in calib.IMAGE_EXTENSIONS)


def test_unreadable_inputs_are_named(inputs: Inputs) -> None:
    """Permission bits that really apply (root runs without its override capability)."""
    locked_folder = _folder(inputs.root / "locked")
    _file(locked_folder / "a.png", _images(inputs.calib)[0].read_bytes())
    locked_ckpt = _file(inputs.root / "locked.pth", inputs.tiny.checkpoint.read_bytes())
    locked_model = _file(inputs.root / "locked.tflite", inputs.tflite.read_bytes())
    out = inputs.out
    cases = [
        (
            "shvit-convert",
            ["--variant", "auto", "--weights", locked_ckpt, "--target", "onnx", "--out", out],
            f"permission denied on {locked_ckpt}",
        ),
        (
            "shvit-convert",
            ["--variant", "auto", "--weights", inputs.ckpt, "--target", "onnx", "--calib", locked_folder, "--out", out],
            "is not readable",
        ),
        ("shvit-check", [locked_model, "--variant", "auto", "--weights", inputs.ckpt, "--json", out / "r.json"], "is not readable"),
        ("shvit-bench", inputs.bench("--target", "tflite:int8", "--calib", locked_folder), "is not readable"),
        ("shvit-demo", ["android", "--model", locked_model, "--out", out], "is not readable"),
    ]
    with unreadable(locked_folder), unreadable(locked_ckpt), unreadable(locked_model):
        for prog, args, message in cases:
            result = _run_as_user(prog, *args)
            assert result.returncode in (1, 2), (prog, result.stderr)
            assert_one_error_line(result.stderr, prog=prog, message=message)
            assert not out.exists()


def test_an_unreadable_sub_folder_is_skipped_with_a_warning(inputs: Inputs) -> None:
    images = _folder(inputs.root / "images")
    for index, source in enumerate(_images(inputs.calib)[:4]):
        folder = images / ("locked" if index == 0 else "open")
        folder.mkdir(exist_ok=True)
        (folder / source.name).write_bytes(source.read_bytes())
    with unreadable(images / "locked"):
        result = _run_as_user(
            "shvit-convert",
            *("--variant", "auto", "--weights", inputs.ckpt, "--input-size", inputs.tiny.input_size, "--target", "onnx"),
            *("--images", images, "--out", inputs.out),
        )
    assert result.returncode == 0, result.stderr
    assert f"warning: skipped folder {images / 'locked'}: " in result.stderr and "ermission denied" in result.stderr
    assert (inputs.out / "shvit_custom_96px_8cls_fp32.onnx").is_file()


def _fill(disk: Path, *, leave_kib: int) -> None:
    """Fill ``disk`` until only ``leave_kib`` KiB are free."""
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    with open(disk / "filler.bin", "wb") as f:
        f.write(b"\0" * max(0, free - leave_kib * 1024))


@pytest.mark.parametrize("target", ["onnx", "coreml", "tflite"])
def test_a_full_disk_keeps_the_previous_artifact_and_leaves_no_temp_files(
    target: str, inputs: Inputs, tiny_previous_exports: Callable[[str, Path], Path]
) -> None:
    with small_disk(inputs.root, megabytes=8) as disk:
        out = disk / "exports"
        args = tiny_convert_args(inputs.tiny, target, out)
        tiny_previous_exports(target, out)  # what a first `shvit-convert` with these args leaves in out
        previous = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert previous, "a previous export to keep"
        _fill(disk, leave_kib=64)
        full = subprocess.run(
            [sys.executable, "-m", "convert.cli.convert", *map(str, args), "--force"], capture_output=True, text=True, timeout=300
        )
        assert full.returncode == 1, full.stderr
        assert_one_error_line(full.stderr, prog="shvit-convert", message="no space left on the device")
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == previous
        assert not [p for p in out.iterdir() if p.name.startswith(".")], "no staging or temp files may remain"


def test_check_bench_and_demo_on_a_full_disk_leave_nothing_half_written(inputs: Inputs) -> None:
    with small_disk(inputs.root, megabytes=2) as disk:
        _fill(disk, leave_kib=0)
        cases = [
            ("shvit-check", [*_check(inputs)[:-2], "--json", disk / "report.json"]),
            ("shvit-bench", inputs.bench("--target", "onnx", out=disk / "bench")),
            ("shvit-demo", ["android", "--model", inputs.tflite, "--out", disk / "app"]),
        ]
        for prog, args in cases:
            result = subprocess.run([sys.executable, "-m", MODULES[prog], *map(str, args)], capture_output=True, text=True, timeout=300)
            assert result.returncode == 1, (prog, result.stderr)
            assert_one_error_line(result.stderr, prog=prog, message="no space left on the device")
            assert files_under(disk) == {"filler.bin"}, (prog, files_under(disk))


def test_disk_full_during_an_export_is_one_line_on_any_machine(
    inputs: Inputs, tiny_previous_exports: Callable[[str, Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same failure injected in-process, so it is covered where no filesystem can be mounted."""
    import convert.api.pipeline

    out = inputs.out
    args = tiny_convert_args(inputs.tiny, "onnx", out)
    tiny_previous_exports("onnx", out)  # what a first `shvit-convert` with these args leaves in out
    previous = (out / "shvit_custom_96px_8cls_fp32.onnx").read_bytes()

    def full(path: Path, *_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(convert.api.pipeline, "write_sidecar", full)
    result = run_cli(convert_command, *args, "--force")
    assert result.code == 1
    assert_one_error_line(result.stderr, prog="shvit-convert", message=f"no space left on the device writing to {out}")
    assert (out / "shvit_custom_96px_8cls_fp32.onnx").read_bytes() == previous
    assert not [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]
