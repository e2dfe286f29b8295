"""Ctrl-C, SIGTERM and SIGKILL in the middle of every command's long step: the previous artifact
survives, no staging folder or temporary file remains (a SIGKILLed run's are swept by the next run),
and the exit code is 130 with one line saying so.

Ctrl-C is sent as a terminal sends it: SIGINT to the whole process group, children included.
``TMPDIR`` points at a folder of the test's own, so "no temporary file remains" is checked exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import tiny_convert_args

from convert.cli.common import EXIT_INTERRUPTED, INTERRUPTED
from convert.io.scratch import SCRATCH_PREFIX
from convert.io.sidecar import sha256_path
from convert.io.staging import STAGING_PREFIX, sweep_stale

ARGS = ["--variant", "s1", "--target", "onnx", "--random-init"]
MODULES = {
    "shvit-convert": "convert.cli.convert",
    "shvit-check": "convert.cli.check",
    "shvit-bench": "convert.cli.bench",
    "shvit-demo": "convert.cli.demo",
}


def ours(tmpdir: Path) -> list[Path]:
    """What a run left in its TMPDIR, less PyTorch's own inductor cache (torch creates it on import
    in its CUDA build and keeps it across runs by design; it is not a temporary file of ours)."""
    return [p for p in tmpdir.iterdir() if not p.name.startswith("torchinductor_")]


def _as_from_a_terminal() -> None:
    """A command typed at a terminal gets SIGINT at its default; a test run launched in the background
    (``cmd &`` from a script) inherits it ignored, and Python then keeps it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(prog: str, args: list[object], *, tmpdir: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """``prog`` in its own session (as from a terminal), its output collected line by line as it comes."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", MODULES[prog], *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, TMPDIR=str(tmpdir)),
        start_new_session=True,
        preexec_fn=_as_from_a_terminal,
    )
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout or ():
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _interrupt(
    prog: str,
    args: list[object],
    *,
    tmpdir: Path,
    when: Callable[[str], bool],
    sig: signal.Signals = signal.SIGINT,
    group: bool = True,
    delay_s: float = 0.0,
) -> tuple[int, str]:
    """Run ``prog`` until ``when(output so far)``, then signal it (and its children, if ``group``)."""
    proc, lines = _start(prog, args, tmpdir=tmpdir)
    deadline = time.monotonic() + 300
    while not when("".join(lines)):
        assert proc.poll() is None, f"{prog} ended before it could be interrupted:\n{''.join(lines)}"
        assert time.monotonic() < deadline, f"{prog} never reached the step to interrupt:\n{''.join(lines)}"
        time.sleep(0.005)
    time.sleep(delay_s)
    assert proc.poll() is None, f"{prog} ended before it could be interrupted:\n{''.join(lines)}"
    (os.killpg if group else os.kill)(proc.pid, sig)
    code = proc.wait(timeout=120)
    time.sleep(0.2)  # the reader thread drains the pipe
    return code, "".join(lines)


def _assert_interrupted(prog: str, code: int, output: str) -> None:
    assert code == EXIT_INTERRUPTED, output
    assert output.strip().splitlines()[-1] == f"{prog}: {INTERRUPTED}"
    assert "Traceback" not in output


def _listing(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) with its hash."""
    return {str(p.relative_to(folder)): sha256_path(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_process_works_in(folder: Path) -> bool:
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if str(cwd.readlink()).startswith(str(folder)):
                return False
        except OSError:
            continue
    return True


NESTED_INTERRUPT = """
import ctypes, sys
import click
from convert.cli.common import run_command

run_string = ctypes.pythonapi.PyRun_String
run_string.restype = ctypes.py_object
run_string.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]

@click.command()
def nested() -> None:
    scope: dict = {}
    run_string(b"raise KeyboardInterrupt", 257, scope, scope)  # 257: Py_file_input

sys.exit(run_command(nested, []))
"""


def test_ctrl_c_inside_a_nested_interpreter_call_still_exits_130(tmp_path: Path) -> None:
    """Ctrl-C landing in a library's ``PyRun_String`` (optree's, inside torch.export) made ``python -m`` die of SIGINT."""
    (tmp_path / "nested_cli.py").write_text(NESTED_INTERRUPT)
    done = subprocess.run([sys.executable, "-m", "nested_cli"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    _assert_interrupted("nested", done.returncode, done.stderr)


# ------------------------------------------------------------------ ONNX, full-size S1


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    out = tmp_path_factory.mktemp("prev")
    subprocess.run([sys.executable, "-m", "convert.cli.convert", *ARGS, "--out", str(out)], check=True, capture_output=True, timeout=300)
    artifact = out / "shvit_s1_fp32.onnx"
    return artifact, artifact.read_bytes()


def _staging_in(out: Path) -> Callable[[str], bool]:
    return lambda _output: bool(list(out.glob(f"{STAGING_PREFIX}*")))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_130_keeps_the_previous_artifact_and_leaves_nothing(previous, sig: signal.Signals, tmp_path: Path) -> None:
    artifact, content = previous
    out = artifact.parent
    code, output = _interrupt(
        "shvit-convert", [*ARGS, "--out", out, "--force"], tmpdir=tmp_path / "tmp", when=_staging_in(out), sig=sig, group=False, delay_s=0.5
    )
    _assert_interrupted("shvit-convert", code, output)
    assert artifact.read_bytes() == content
    assert not list(out.glob(f"{STAGING_PREFIX}*"))
    assert ours(tmp_path / "tmp") == []


def test_a_killed_export_keeps_the_previous_artifact_and_its_leftovers_are_swept(previous, tmp_path: Path) -> None:
    artifact, content = previous
    out = artifact.parent
    code, _ = _interrupt(
        "shvit-convert",
        [*ARGS, "--out", out, "--force"],
        tmpdir=tmp_path / "tmp",
        when=_staging_in(out),
        sig=signal.SIGKILL,
        group=False,
        delay_s=0.5,
    )
    assert code == -signal.SIGKILL
    assert artifact.read_bytes() == content
    leftovers = list(out.glob(f"{STAGING_PREFIX}*"))
    assert leftovers, "SIGKILL cannot be cleaned up in-process; the next run must sweep it"
    assert sweep_stale(out, prefix=STAGING_PREFIX) == leftovers
    assert not list(out.glob(f"{STAGING_PREFIX}*"))


def test_sweep_restores_an_artifact_killed_mid_swap(tmp_path: Path) -> None:
    parked = tmp_path / f"{STAGING_PREFIX}999999999-old-model.mlpackage"
    parked.mkdir()
    (parked / "weight.bin").write_bytes(b"w")
    sweep_stale(tmp_path, prefix=STAGING_PREFIX)
    assert (tmp_path / "model.mlpackage" / "weight.bin").read_bytes() == b"w"


# ------------------------------------------------------------------ Core ML and TFLite, tiny model

CONVERTING = {"coreml": "converting to a Core ML", "tflite": "converting with onnx2tf", "coreai": "converting with coreai-torch"}


@pytest.mark.parametrize("target", ["coreml", "tflite", "coreai"])
def test_ctrl_c_mid_conversion_keeps_the_previous_export_and_leaves_no_temp_files(
    tiny: Any, tiny_previous_exports: Callable[[str, Path], Path], target: str, tmp_path: Path
) -> None:
    out, tmpdir = tmp_path / "out", tmp_path / "tmp"
    tiny_previous_exports(target, out)  # what shvit-convert with tiny_convert_args(tiny, target, out) leaves
    before = _listing(out)
    code, output = _interrupt(
        "shvit-convert",
        [*tiny_convert_args(tiny, target, out), "--force"],
        tmpdir=tmpdir,
        when=lambda text: CONVERTING[target] in text,
        delay_s=1.0,
    )
    _assert_interrupted("shvit-convert", code, output)
    assert _listing(out) == before, "the previous export and its sidecar must be untouched, with no staging left"
    assert ours(tmpdir) == [], "no temporary file of the run may remain"


def test_a_killed_cli_leaves_no_orphan_converter_and_the_next_run_sweeps_its_files(tiny: Any, tmp_path: Path) -> None:
    """``kill -9`` on the CLI alone: its onnx2tf child notices and exits; the next run removes what they left."""
    out, tmpdir = tmp_path / "out", tmp_path / "tmp"
    code, output = _interrupt(
        "shvit-convert",
        tiny_convert_args(tiny, "tflite", out),
        tmpdir=tmpdir,
        when=lambda text: CONVERTING["tflite"] in text,
        sig=signal.SIGKILL,
        group=False,
        delay_s=1.0,
    )
    assert code == -signal.SIGKILL, output
    scratch = list(tmpdir.glob(f"{SCRATCH_PREFIX}*"))
    assert len(scratch) == 1 and list(out.glob(f"{STAGING_PREFIX}*")), "SIGKILL leaves its files for the next run to sweep"
    deadline = time.monotonic() + 30
    while not _no_process_works_in(scratch[0]):
        assert time.monotonic() < deadline, "the onnx2tf child outlived the killed CLI"
        time.sleep(0.2)
    again = subprocess.run(
        [sys.executable, "-m", "convert.cli.convert", *map(str, tiny_convert_args(tiny, "onnx", out))],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, TMPDIR=str(tmpdir)),
    )
    assert again.returncode == 0, again.stderr
    assert ours(tmpdir) == []
    assert sorted(p.name for p in out.iterdir()) == ["shvit_custom_96px_8cls_fp32.onnx", "shvit_custom_96px_8cls_fp32.onnx.json"], (
        "staging swept"
    )


# ------------------------------------------------------------------ shvit-check, shvit-bench, shvit-demo


def test_ctrl_c_in_shvit_check_writes_no_report(
    tiny: Any, tiny_exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    made = tiny_exports
    reports = tmp_path / "reports"
    code, output = _interrupt(
        "shvit-check",
        [
            "--variant",
            "auto",
            "--weights",
            tiny.checkpoint,
            "--images",
            tiny.images_dir,
            made["tflite_int8"],
            made["onnx"],
            "--json",
            reports / "report.json",
            "--html",
            reports / "report.html",
        ],
        tmpdir=tmp_path / "tmp",
        when=lambda text: "[1/2]" in text,
        delay_s=0.3,
    )
    _assert_interrupted("shvit-check", code, output)
    assert not reports.exists()
    assert ours(tmp_path / "tmp") == []


def test_ctrl_c_in_shvit_bench_writes_no_results_and_keeps_finished_exports_whole(tiny: Any, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code, output = _interrupt(
        "shvit-bench",
        [
            "--variant",
            "auto",
            "--weights",
            tiny.checkpoint,
            "--input-size",
            tiny.input_size,
            "--target",
            "onnx",
            "--runs",
            10**6,
            "--warmup",
            0,
            "--no-baselines",
            "--out",
            out,
        ],
        tmpdir=tmp_path / "tmp",
        when=lambda text: "→ timing" in text,
        delay_s=1.0,
    )
    _assert_interrupted("shvit-bench", code, output)
    assert sorted(p.name for p in out.iterdir()) == ["exports"], "no bench.csv/json/png from an interrupted run"
    finished = sorted(p.name for p in (out / "exports" / "auto").iterdir())
    assert finished == ["shvit_custom_96px_8cls_fp32.onnx", "shvit_custom_96px_8cls_fp32.onnx.json"]
    assert ours(tmp_path / "tmp") == []


# Writing a demo takes well under a second: rather than race it, Ctrl-C arrives (a real SIGINT to the
# process group) the moment the model is being copied into the half-written project.
CTRL_C_WHILE_COPYING_THE_MODEL = """
import os, shutil, signal, sys
import mobile_demo.ios as ios
real_copytree = shutil.copytree
def copytree(src, dst, *args, **kwargs):
    real_copytree(src, dst, *args, **kwargs)
    os.killpg(os.getpgrp(), signal.SIGINT)
    signal.pause()
ios.shutil.copytree = copytree
from convert.cli.demo import main
main(sys.argv[1:])
"""


def test_ctrl_c_in_shvit_demo_leaves_no_project(tiny_previous_exports: Callable[[str, Path], Path], tmp_path: Path) -> None:
    out, tmpdir = tmp_path / "export", tmp_path / "tmp"
    tiny_previous_exports("coreml", out)  # what shvit-convert with tiny_convert_args(tiny, "coreml", out) leaves
    model = next(out.glob("*.mlpackage"))
    apps = tmp_path / "apps"
    apps.mkdir()
    tmpdir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", CTRL_C_WHILE_COPYING_THE_MODEL, "ios", "--model", str(model), "--out", str(apps / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TMPDIR=str(tmpdir)),
        start_new_session=True,
    )
    _assert_interrupted("shvit-demo", proc.returncode, proc.stdout + proc.stderr)
    assert list(apps.iterdir()) == [], "neither the project nor its staging folder may remain"
    assert ours(tmpdir) == []
