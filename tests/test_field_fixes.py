"""Issue 14's field reports: non-finite checkpoints refused at load, GPU delegate coverage measured
offline, and the README's first run on a fresh machine with no network."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from bad_inputs import assert_one_error_line
from convert.cli import main as convert_main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


# ------------------------------------------------------------------- 1. NaN / Inf checkpoints


def _poisoned_checkpoint(root: Path, value: float, *, count: int = 3) -> tuple[Path, str, int]:
    """An S1 checkpoint in the official layout with ``count`` entries of one weight set to ``value``."""
    import shvit

    state = shvit.create_model("s1").state_dict()
    key = next(k for k, v in state.items() if k.startswith("blocks1.") and k.endswith("weight") and v.dim() == 4)
    state[key].view(-1)[:count] = value
    path = root / f"diverged_{'nan' if value != value else 'inf'}.pth"
    torch.save({"model": state}, path)
    return path, key, state[key].numel()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_checkpoint_is_refused_at_load(value: float, tmp_path: Path, capsys) -> None:
    path, key, numel = _poisoned_checkpoint(tmp_path, value)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        convert_main(["--variant", "s1", "--target", "onnx", "--weights", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert info.value.code == 1, err
    assert_one_error_line(err, prog="shvit-convert",
                          message=f"checkpoint {path} has non-finite values: {key} holds 3 NaN/Inf of {numel}; ")
    assert err.strip().endswith("the file is corrupt or training diverged — use another checkpoint")
    assert "exporting" not in err and "parity" not in err, "refused before any work"
    assert not out.exists(), "nothing may be written"


def test_non_finite_checkpoint_through_the_installed_command(tmp_path: Path) -> None:
    path, key, _ = _poisoned_checkpoint(tmp_path, float("nan"), count=5)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "convert.cli", "--variant", "s1", "--target", "tflite", "--weights", str(path),
                           "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1, proc.stderr
    assert_one_error_line(proc.stderr, prog="shvit-convert", message=f"{key} holds 5 NaN/Inf of")
    assert not out.exists()


def test_every_non_finite_tensor_is_counted(tmp_path: Path) -> None:
    import shvit

    state = shvit.create_model("s1").state_dict()
    floats = [k for k, v in state.items() if v.is_floating_point()]
    for key in floats[:3]:
        state[key].view(-1)[0] = float("inf")
    path = tmp_path / "x.pth"
    torch.save(state, path)
    with pytest.raises(shvit.WeightsError, match=rf"{re.escape(floats[0])} holds 1 NaN/Inf of \d+ \(and 2 more tensors\)"):
        shvit.create_model("s1", weights=path)


# ------------------------------------------------------------------- 4. GPU delegate coverage


@pytest.fixture(scope="module")
def tiny_graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Small TFLite graphs built with TensorFlow: fully GPU-friendly, with REVERSE_V2 (no GPU kernel), fp16 weights."""
    tf = pytest.importorskip("tensorflow")

    def convert(fn: Callable, *, fp16: bool = False) -> bytes:
        spec = tf.TensorSpec([1, 8, 8, 4], tf.float32)
        function = tf.function(fn, input_signature=[spec])
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
        if fp16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()

    kernel = tf.constant(torch.randn(3, 3, 4, 8, generator=torch.Generator().manual_seed(0)).numpy())
    conv = lambda x: tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + 1.0)  # noqa: E731
    return {
        "compatible": convert(conv),
        "reverse": convert(lambda x: tf.reverse(tf.nn.relu(x), [1]) + 1.0),
        "fp16": convert(conv, fp16=True),
    }


@pytest.fixture(scope="module")
def analyzer_gap(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    """Why no analyzer here checks GPU compatibility (asked in a child, as the CLIs do), or None when one does."""
    from convert.tflite.gpu_compat import PROBE_OP, GpuCheckUnavailable, gpu_compatibility_of, probe_model

    probe = tmp_path_factory.mktemp("probe") / "probe.tflite"
    probe.write_bytes(probe_model())
    try:
        result = gpu_compatibility_of(probe)
    except GpuCheckUnavailable as exc:
        return str(exc)
    assert result.ops == (PROBE_OP,), result
    return None


@pytest.fixture
def checking_analyzer(analyzer_gap: str | None) -> None:
    if analyzer_gap is not None:
        pytest.skip(analyzer_gap)


def _check(tiny_graphs: dict[str, bytes], name: str, root: Path):
    from convert.tflite.gpu_compat import gpu_compatibility_of

    path = root / f"{name}.tflite"
    path.write_bytes(tiny_graphs[name])
    return gpu_compatibility_of(path)


def test_analyzer_names_the_gpu_incompatible_op(tiny_graphs, checking_analyzer, tmp_path: Path) -> None:
    result = _check(tiny_graphs, "reverse", tmp_path)
    assert result.incompatible >= 1 and "REVERSE_V2" in result.ops, result
    assert result.total_ops >= 3 and any(r.startswith("REVERSE_V2: ") for r in result.reasons)
    assert result.summary().startswith(f"{result.incompatible} of {result.total_ops} ops not supported: REVERSE_V2")


def test_fully_compatible_graph_gives_zero(tiny_graphs, checking_analyzer, tmp_path: Path) -> None:
    result = _check(tiny_graphs, "compatible", tmp_path)
    assert result.incompatible == 0 and result.ops == () and result.total_ops >= 1
    assert result.summary() == f"all {result.total_ops} ops supported"


def test_fp16_weights_are_checked_as_the_delegate_folds_them(tiny_graphs, checking_analyzer, tmp_path: Path) -> None:
    result = _check(tiny_graphs, "fp16", tmp_path)
    assert result.folded_dequantize >= 1 and result.incompatible == 0, result


def test_delegate_view_folds_fp16_dequantize_into_the_same_function(tiny_graphs, tmp_path: Path) -> None:
    import numpy as np

    from convert.tflite import graphinfo
    from convert.tflite.gpu_compat import delegate_view
    from convert.tflite.runtime import interpreter

    original = tiny_graphs["fp16"]
    view, folded = delegate_view(original)
    assert folded >= 1 and graphinfo.op_counts(original).get("DEQUANTIZE") == folded
    assert "DEQUANTIZE" not in graphinfo.op_counts(view)
    assert delegate_view(tiny_graphs["compatible"]) == (tiny_graphs["compatible"], 0)
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 4)).astype(np.float32)
    outputs = []
    for index, data in enumerate((original, view)):
        path = tmp_path / f"{index}.tflite"
        path.write_bytes(data)
        it, _ = interpreter(path, threads=1)
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        outputs.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-6, atol=1e-6)


def test_an_analyzer_without_the_check_is_never_taken_for_a_pass(tiny_graphs, monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorFlow 2.19's analyzer calls everything compatible: the probe must catch it, not report 0."""
    from convert.tflite import gpu_compat

    monkeypatch.delenv(gpu_compat.ANALYZER_ENV, raising=False)
    gpu_compat._analyzer.cache_clear()
    try:
        result = gpu_compat.gpu_compatibility(tiny_graphs["reverse"])
    except gpu_compat.GpuCheckUnavailable as exc:
        assert "does not check GPU delegate compatibility" in str(exc) and gpu_compat.ANALYZER_ENV in str(exc)
    else:
        assert result.incompatible >= 1 and "REVERSE_V2" in result.ops
    finally:
        gpu_compat._analyzer.cache_clear()


def test_check_in_a_child_never_imports_tensorflow_in_the_caller(tiny_graphs, analyzer_gap: str | None, tmp_path: Path) -> None:
    path = tmp_path / "reverse.tflite"
    path.write_bytes(tiny_graphs["reverse"])
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from convert.tflite.gpu_compat import GpuCheckUnavailable, gpu_compatibility_of\n"
        "try:\n"
        "    r = gpu_compatibility_of(Path(sys.argv[1])); out = {'incompatible': r.incompatible, 'ops': list(r.ops)}\n"
        "except GpuCheckUnavailable as exc:\n"
        "    out = {'unavailable': str(exc)}\n"
        "print(json.dumps({**out, 'tensorflow_imported': 'tensorflow' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data.pop("tensorflow_imported") is False
    if analyzer_gap is None:
        assert data["incompatible"] >= 1 and "REVERSE_V2" in data["ops"], data
    else:
        assert "does not check GPU delegate compatibility" in data["unavailable"], data


@pytest.mark.slow
def test_tflite_export_records_gpu_delegate_coverage(tiny, analyzer_gap: str | None, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        convert_main(["--variant", "auto", "--target", "tflite", "--precision", "fp32", "--weights", str(tiny.checkpoint),
                      "--labels", str(tiny.labels_file), "--input-size", str(tiny.input_size), "--images", str(tiny.images_dir),
                      "--out", str(out)])
    err = capsys.readouterr().err
    assert info.value.code == 0, err
    artifact = next(out.glob("*.tflite"))
    record = json.loads((out / (artifact.name + ".json")).read_text())["export"]["gpu_delegate"]
    lines = [line for line in err.splitlines() if line.startswith("  GPU delegate: ")]
    assert len(lines) == 1, err
    if analyzer_gap is None:
        assert record["checked"] and record["incompatible"] == 0 and record["total_ops"] > 0, record
        assert lines[0].startswith(f"  GPU delegate: all {record['total_ops']} ops supported"), err
    else:
        assert record["checked"] is False and "does not check GPU delegate compatibility" in record["reason"]
        assert lines[0].startswith("  GPU delegate: not checked: ")


# ------------------------------------------------------------------- 5. a fresh machine, offline


def _readme_commands() -> list[str]:
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", README, re.S) for line in block.splitlines() if line.strip()]


def _main_job_commands() -> list[list[str]]:
    return [shlex.split(c) for c in _readme_commands() if c.startswith(".venv/bin/shvit-convert ")]


def _offline(command: list[str]) -> list[str]:
    """``command`` in a network namespace of its own (no interface up), children included."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode:
        pytest.skip("cannot make a network namespace here (needs unshare and root): no way to prove the run is offline")
    return ["unshare", "--net", *command]


def _fresh_machine(root: Path) -> dict[str, str]:
    """The environment of a user who never ran the toolkit: empty home, empty cache, no weights URL override."""
    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHVIT_")}
    return {**env, "HOME": str(home), "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(home / ".cache")}


def test_readme_shows_the_offline_try_out_before_the_released_weights() -> None:
    commands = _main_job_commands()
    assert len(commands) >= 2
    assert "--random-init" in commands[0] and "--weights" not in commands[0]
    assert commands[1][commands[1].index("--weights") + 1] == "imagenet"
    section = README.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    assert "not for deployment" in section.split(shlex.join(commands[0]))[0]


@pytest.mark.slow
def test_readme_first_main_job_runs_on_a_fresh_offline_machine(tmp_path: Path) -> None:
    command = _main_job_commands()[0]
    assert "--random-init" in command
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = _fresh_machine(tmp_path)
    proc = subprocess.run(_offline([sys.executable, "-m", "convert.cli", *command[1:]]), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = cwd / command[command.index("--out") + 1]
    artifact = Path(proc.stdout.strip().splitlines()[-1])
    assert (cwd / artifact).exists() and (cwd / artifact).parent.resolve() == out.resolve()
    record = json.loads((out / (artifact.name + ".json")).read_text())
    assert "not for deployment" in json.dumps(record) and record["parity"]["passed"]


def test_cached_released_weights_convert_offline(tmp_path: Path) -> None:
    """``--weights imagenet`` with the checkpoint already in $SHVIT_CACHE_DIR needs no network at all."""
    import shvit
    from shvit.weights import sha256_of

    env = {**_fresh_machine(tmp_path), "SHVIT_CACHE_DIR": str(tmp_path / "cache")}
    cached = Path(env["SHVIT_CACHE_DIR"]) / "weights" / "shvit_s1.pth"
    cached.parent.mkdir(parents=True)
    torch.save({"model": shvit.create_model("s1").state_dict()}, cached)
    cwd = tmp_path / "work"
    cwd.mkdir()
    proc = subprocess.run(_offline([sys.executable, "-m", "convert.cli", "--variant", "s1", "--target", "onnx",
                                    "--weights", "imagenet", "--out", "exports"]),
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "download" not in proc.stderr.lower(), proc.stderr
    record = json.loads(next((cwd / "exports").glob("*.json")).read_text())
    assert record["weights"]["source"] == "imagenet" and record["weights"]["sha256"] == sha256_of(cached), record["weights"]
