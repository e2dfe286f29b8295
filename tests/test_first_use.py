"""What a new user trips over (issue 20): try-outs that can be checked, honest provenance, named outputs,
no silently rewritten input, a quiet and quick command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from helpers import run_cli

import calib
import convert
import shvit
from convert.cli.check import check_command
from convert.cli.convert import convert_command
from convert.cli.demo import demo_group
from shvit.provenance import weights_digest

BIN = Path(sys.executable).parent


def _tiny_convert(tiny: Any, out: Path, *extra: object):
    return run_cli(convert_command, "--variant", "auto", "--weights", tiny.checkpoint, "--target", "onnx", "--out", out, *extra)


def test_a_random_init_try_out_is_checked_against_the_same_draw(tmp_path: Path) -> None:
    made = run_cli(convert_command, "--variant", "s1", "--target", "onnx", "--random-init", "--out", tmp_path)
    assert made.code == 0, made.stderr
    artifact = Path(made.stdout.strip())
    weights = json.loads(Path(f"{artifact}.json").read_text())["weights"]
    assert weights["seed"] == shvit.RANDOM_INIT_SEED and weights["source"].startswith("random initialisation")
    checked = run_cli(check_command, artifact, "--variant", "s1", "--random-init", "--count", 4)
    assert checked.code == 0 and "PASS" in checked.stdout, checked.stdout + checked.stderr
    other_draw = convert.check(artifact, reference="s1", weights=None, seed=1, count=4)
    assert not other_draw.passed, "another random draw must not pass as the same model"


def test_random_draws_are_reproducible_and_leave_the_global_generator_alone() -> None:
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    first, second = shvit.create_model("s1", seed=3), shvit.create_model("s1", seed=3)
    assert torch.equal(torch.rand(3), expected), "create_model(seed=...) moved torch's global generator"
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(first.head.l.weight, shvit.create_model("s1", seed=4).head.l.weight)


def test_an_exported_model_object_records_the_weights_it_really_holds(tiny: Any, tmp_path: Path) -> None:
    loaded = shvit.create_model("auto", weights=tiny.checkpoint)
    as_loaded = convert.export(loaded, target="onnx", out_dir=tmp_path / "a", input_size=tiny.input_size)
    recorded = as_loaded.sidecar["weights"]
    assert recorded["sha256"] == shvit.weights.sha256_of(tiny.checkpoint) and recorded["path"] == str(tiny.checkpoint)
    assert json.loads(as_loaded.sidecar_path.read_text()) == json.loads(json.dumps(as_loaded.sidecar, default=str))
    with torch.no_grad():
        loaded.head.l.weight.add_(0.01)  # fine-tuned since loading
    changed = convert.export(loaded, target="onnx", out_dir=tmp_path / "b", input_size=tiny.input_size).sidecar["weights"]
    assert "sha256" not in changed and changed["source"].startswith("in-memory SHViT, changed since loaded from")
    assert changed["state_sha256"] == shvit.provenance.state_sha256(loaded)
    assert weights_digest(changed) == f"{changed['state_sha256']} (tensors of an in-memory model; no checkpoint file)"
    assert weights_digest(recorded) == recorded["sha256"]
    assert "random" in weights_digest(shvit.create_model("s1", seed=2).weights_origin.record())


def test_outputs_are_named_and_an_out_that_looks_like_a_file_is_refused(tiny: Any, tmp_path: Path) -> None:
    refused = _tiny_convert(tiny, tmp_path / "my_model.onnx")
    assert refused.code == 2 and not (tmp_path / "my_model.onnx").exists()
    assert refused.stderr.strip().splitlines() == [
        f"shvit-convert: error: --out: {tmp_path / 'my_model.onnx'} looks like a file name, but it is the folder to write into: "
        "give a folder, and 'my_model' as the artifact's name (see shvit-convert --help)"
    ]
    named = _tiny_convert(tiny, tmp_path / "out", "--name", "my_model.onnx", "--input-size", tiny.input_size)
    assert named.code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["my_model.onnx", "my_model.onnx.json"]
    wrong = _tiny_convert(tiny, tmp_path / "out", "--name", "my_model.tflite", "--force")
    assert wrong.code == 2 and "a onnx export is a .onnx file" in wrong.stderr
    resized = _tiny_convert(tiny, tmp_path / "out", "--input-size", 128)
    assert resized.code == 0 and Path(resized.stdout.strip()).name == "shvit_custom_128px_8cls_fp32.onnx"


def test_an_input_size_of_zero_is_refused_not_replaced(tiny: Any, tmp_path: Path) -> None:
    run = _tiny_convert(tiny, tmp_path / "out", "--input-size", 0)
    assert run.code != 0 and "input size must be a multiple of 32" in run.stderr and "not 0" in run.stderr
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_of_another_variant_names_that_variant(tiny: Any, tmp_path: Path) -> None:
    checkpoint = tmp_path / "s2.pth"
    torch.save(shvit.create_model("s2", seed=0).state_dict(), checkpoint)
    run = run_cli(convert_command, "--variant", "s1", "--weights", checkpoint, "--target", "onnx", "--out", tmp_path / "out")
    assert run.code == 1 and "it is an SHViT-S2 checkpoint: load it as variant s2" in run.stderr and "variant auto" not in run.stderr


def test_heic_photos_are_listed_as_skipped(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for index, pixels in enumerate(calib.synthetic_images(3, 64, seed=0)):
        Image.fromarray(pixels).save(folder / f"IMG_{index:04d}.JPG")
    (folder / "IMG_0009.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    warnings: list[str] = []
    found = calib.load_folder(folder, size=64, count=8, cache=False, warn=warnings.append, requested=False)
    assert len(found) == 3
    assert warnings == [f"skipped {folder / 'IMG_0009.HEIC'}: HEIC photos cannot be decoded here; {calib.folder.CONVERT_HINT}"]


def test_every_command_has_a_version_and_parses_arguments_without_pytorch() -> None:
    for command in ("shvit-convert", "shvit-check", "shvit-bench", "shvit-demo"):
        run = subprocess.run([str(BIN / command), "--version"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and run.stdout.strip() == f"{command} {shvit.__version__}", run.stderr
    probe = (
        "import sys, convert.cli.convert, convert.cli.check, convert.cli.bench, convert.cli.demo; "
        "print(sorted(m for m in ('torch', 'tensorflow', 'coremltools') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env={**os.environ})
    assert loaded.returncode == 0 and loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


def test_check_table_gives_both_errors_relative_to_the_logit_scale(tiny: Any, tmp_path: Path) -> None:
    made = _tiny_convert(tiny, tmp_path, "--input-size", tiny.input_size)
    checked = run_cli(check_command, made.stdout.strip(), "--variant", "auto", "--weights", tiny.checkpoint, "--count", 4)
    header = next(line for line in checked.stdout.splitlines() if line.startswith("artifact"))
    assert "max|Δ|/scale" in header and "mean|Δ|/scale" in header


def test_a_demo_of_a_random_weights_model_warns_and_records_no_local_path(tmp_path: Path) -> None:
    made = run_cli(
        convert_command,
        "--variant",
        "s1",
        "--target",
        "tflite",
        "--precision",
        "int8-weights",
        "--random-init",
        "--out",
        tmp_path / "exports",
        "--input-size",
        64,
    )
    assert made.code == 0, made.stderr
    demo = run_cli(demo_group, "android", "--model", made.stdout.strip(), "--out", tmp_path / "demo")
    assert demo.code == 0, demo.stderr
    assert "was exported from random weights" in demo.stderr
    marker = (tmp_path / "demo" / "shvit-demo.json").read_text()
    assert str(tmp_path) not in marker and json.loads(marker)["model"] == Path(made.stdout.strip()).name


def test_a_newcomer_walk_through_readme_on_the_tiny_model(tiny: Any, tmp_path: Path) -> None:
    """README's commands in order, through the installed commands in a fresh folder: convert (Core ML, then TFLite),
    check both, bench the files already there (no export), then a demo app for each."""
    weights = ["--variant", "auto", "--weights", str(tiny.checkpoint), "--input-size", str(tiny.input_size)]
    steps = [
        ["shvit-convert", *weights, "--target", "coreml", "--out", "exports/"],
        ["shvit-convert", *weights, "--target", "tflite", "--out", "exports/"],
        [
            "shvit-check",
            "exports/shvit_custom_96px_8cls_fp16.mlpackage",
            "exports/shvit_custom_96px_8cls_fp32.tflite",
            *weights,
            "--images",
            str(tiny.images_dir),
            "--count",
            "8",
        ],
        [
            "shvit-bench",
            "exports/shvit_custom_96px_8cls_fp16.mlpackage",
            "exports/shvit_custom_96px_8cls_fp32.tflite",
            "--runs",
            "4",
            "--warmup",
            "1",
            "--rounds",
            "2",
            "--count",
            "8",
            "--out",
            "bench/",
        ],
        ["shvit-demo", "ios", "--model", "exports/shvit_custom_96px_8cls_fp16.mlpackage", "--out", "demo-ios"],
        ["shvit-demo", "android", "--model", "exports/shvit_custom_96px_8cls_fp32.tflite", "--out", "demo-android"],
    ]
    for command, *args in steps:
        run = subprocess.run([str(BIN / command), *args], cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0 and "Traceback" not in run.stderr, f"{command} {' '.join(args)}\n{run.stderr[-3000:]}"
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == [
        "shvit_custom_96px_8cls_fp16.mlpackage",
        "shvit_custom_96px_8cls_fp16.mlpackage.json",
        "shvit_custom_96px_8cls_fp32.labels.txt",
        "shvit_custom_96px_8cls_fp32.tflite",
        "shvit_custom_96px_8cls_fp32.tflite.json",
    ], "shvit-bench on existing files exports nothing"
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())["rows"]
    assert [row["kind"] for row in rows] == ["reference", "ours", "ours"] and rows[0]["name"] == "pytorch (reference)"
    assert [row["export"] for row in rows[1:]] == ["given", "given"] and all(row["parity"] == "pass" for row in rows[1:])
    assert (tmp_path / "demo-ios" / "project.yml").is_file() and (tmp_path / "demo-android" / "shvit-demo.json").is_file()


def test_on_random_weights_int8_gates_on_cosine_alone() -> None:
    """Near-tied logits make top-1 agreement chance: auto mode must not steer by it, and must say so."""
    from convert.int8.options import int8_options, resolve_int8
    from convert.int8.report import Quality, aim

    options = resolve_int8("int8", {"int8_min_cosine": "0.98", "int8_min_top1": "0.9"})
    trained, random = int8_options(options).target, int8_options(options, random_weights=True).target
    near_ties = Quality(images=8, min_cosine=0.999, mean_cosine=0.999, top1=0.25)
    assert not trained.met_by(near_ties) and random.met_by(near_ties) and aim(random).met_by(near_ties)
    assert random.describe() == "min cosine 0.98 (top-1 not gated: random weights)"
    assert trained.describe() == "min cosine 0.98, top-1 90%"


def test_demo_with_a_target_that_has_none_names_the_apps_in_words(tmp_path: Path) -> None:
    run = run_cli(convert_command, "--variant", "s1", "--target", "onnx", "--random-init", "--demo", tmp_path / "demo")
    assert run.code != 0 and "ios-coreai" not in run.stderr
    assert "an iOS app for --target coreml" in run.stderr and "an Android app for --target tflite" in run.stderr


def test_a_seed_without_random_init_is_a_usage_error(tmp_path: Path) -> None:
    run = run_cli(convert_command, "--variant", "s1", "--target", "onnx", "--seed", 3, "--out", tmp_path / "out")
    assert run.code == 2 and run.stderr.strip().splitlines() == [
        "shvit-convert: error: --seed: picks a random draw: it goes with --random-init (see shvit-convert --help)"
    ]
    assert not (tmp_path / "out").exists()
