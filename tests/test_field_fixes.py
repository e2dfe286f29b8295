"""Issue 14's field reports: non-finite checkpoints refused at load."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bad_inputs import assert_one_error_line
from convert.cli import main as convert_main

ROOT = Path(__file__).resolve().parents[1]


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
