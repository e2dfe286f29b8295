"""Interrupted and killed exports: the previous artifact survives and no staging files remain."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convert.artifacts import STAGING_PREFIX, sweep_stale_staging

ARGS = ["--variant", "s1", "--target", "onnx", "--random-init"]


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    out = tmp_path_factory.mktemp("prev")
    subprocess.run([sys.executable, "-m", "convert.cli", *ARGS, "--out", str(out)], check=True, capture_output=True, timeout=300)
    artifact = out / "shvit_s1_fp32.onnx"
    return artifact, artifact.read_bytes()


def _start_and_signal(out: Path, sig: signal.Signals) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "convert.cli", *ARGS, "--out", str(out), "--force"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob(f"{STAGING_PREFIX}*")):  # the export is under way once it stages
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "export never started staging"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_130_keeps_the_previous_artifact_and_leaves_nothing(previous, sig: signal.Signals, tmp_path: Path) -> None:
    artifact, content = previous
    out = artifact.parent
    result = _start_and_signal(out, sig)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "shvit-convert: interrupted; nothing was written"
    assert "Traceback" not in result.stderr
    assert artifact.read_bytes() == content
    assert not list(out.glob(f"{STAGING_PREFIX}*"))


def test_a_killed_export_keeps_the_previous_artifact_and_its_leftovers_are_swept(previous) -> None:
    artifact, content = previous
    out = artifact.parent
    result = _start_and_signal(out, signal.SIGKILL)
    assert result.returncode == -signal.SIGKILL
    assert artifact.read_bytes() == content
    leftovers = list(out.glob(f"{STAGING_PREFIX}*"))
    assert leftovers, "SIGKILL cannot be cleaned up in-process; the next run must sweep it"
    assert sweep_stale_staging(out) == leftovers
    assert not list(out.glob(f"{STAGING_PREFIX}*"))


def test_sweep_restores_an_artifact_killed_mid_swap(tmp_path: Path) -> None:
    parked = tmp_path / f"{STAGING_PREFIX}999999999-old-model.mlpackage"
    parked.mkdir()
    (parked / "weight.bin").write_bytes(b"w")
    sweep_stale_staging(tmp_path)
    assert (tmp_path / "model.mlpackage" / "weight.bin").read_bytes() == b"w"
