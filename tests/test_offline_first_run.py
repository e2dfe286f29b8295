"""Issue 14's field reports: non-finite checkpoints refused at load and the README's first run on a
fresh machine with no network (GPU delegate coverage: tests/test_gpu_delegate.py)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bad_inputs import assert_one_error_line

from convert.cli.convert import main as convert_main

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
    assert_one_error_line(err, prog="shvit-convert", message=f"checkpoint {path} has non-finite values: {key} holds 3 NaN/Inf of {numel}; ")
    assert err.strip().endswith("the file is corrupt or training diverged — use another checkpoint")
    assert "exporting" not in err and "parity" not in err, "refused before any work"
    assert not out.exists(), "nothing may be written"


def test_non_finite_checkpoint_through_the_installed_command(tmp_path: Path) -> None:
    path, key, _ = _poisoned_checkpoint(tmp_path, float("nan"), count=5)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "convert.cli.convert", "--variant", "s1", "--target", "tflite", "--weights", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
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


def _convert_offline(args: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """``shvit-convert ARGS`` as a fresh process with no network."""
    command = _offline([sys.executable, "-m", "convert.cli.convert", *args])
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)


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
    proc = _convert_offline(command[1:], cwd=cwd, env=env, timeout_s=1500)
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
    proc = _convert_offline(
        ["--variant", "s1", "--target", "onnx", "--weights", "imagenet", "--out", "exports"], cwd=cwd, env=env, timeout_s=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "download" not in proc.stderr.lower(), proc.stderr
    record = json.loads(next((cwd / "exports").glob("*.json")).read_text())
    assert record["weights"]["source"] == "imagenet" and record["weights"]["sha256"] == sha256_of(cached), record["weights"]
