"""shvit-bench on artifacts a user already has (nothing exported), and the interleaved rounds every bench is timed in."""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Run, private_cache, run_cli

from convert import targets
from convert.bench.latency import LatencyUnavailable, Model, measure_all, run_rounds, schedule
from convert.cli.bench import bench_command
from convert.io.scratch import Scratch
from convert.io.sidecar import sidecar_path

RUNS, ROUNDS = 4, 2


def _copy(artifact: Path, folder: Path, *, sidecar: bool = True) -> Path:
    """``artifact`` (and its sidecar) in ``folder``, as a user's own exports folder."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(artifact, folder / artifact.name)
    if sidecar:
        shutil.copy2(sidecar_path(artifact), folder / sidecar_path(artifact).name)
    return folder / artifact.name


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def given(
    tiny: Any, tiny_exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Run, Path, list[Path], dict[str, tuple[int, int]]]:
    """The tiny model's ONNX and TFLite int8 exports, benchmarked as they are; the exports folder as it was before."""
    made = tiny_exports
    root = tmp_path_factory.mktemp("given")
    artifacts = [_copy(made["onnx"], root / "exports"), _copy(made["tflite_int8"], root / "exports")]
    before = _listing(root / "exports")
    out = root / "bench"
    with private_cache(tmp_path_factory):
        run = run_cli(
            bench_command,
            *artifacts,
            "--images",
            tiny.images_dir,
            "--labels-from-folders",
            "--count",
            16,
            "--runs",
            RUNS,
            "--warmup",
            1,
            "--rounds",
            ROUNDS,
            "--out",
            out,
            json_path=out / "bench.json",
        )
    return run, out, artifacts, before


def test_given_artifacts_are_checked_and_timed_without_any_export(given: Any, tiny: Any) -> None:
    run, out, artifacts, before = given
    assert run.code == 0, run.stdout + run.stderr
    assert "timing the 2 given artifacts as they are (nothing is exported)" in run.stderr
    assert "exporting" not in run.stderr
    assert _listing(artifacts[0].parent) == before, "the artifacts' folder is untouched"
    assert sorted(p.name for p in out.iterdir()) == ["bench.csv", "bench.json", "bench.png"], "no exports/ folder"
    report = run.report
    assert report is not None and report["settings"]["artifacts"] == [str(a) for a in artifacts]
    (reference,) = report["settings"]["references"]
    assert reference["weights"] == str(tiny.checkpoint) and reference["input_size"] == tiny.input_size  # from the sidecars
    rows = report["rows"]
    assert [r["kind"] for r in rows] == ["reference", "ours", "ours"]
    assert [r["artifact"] for r in rows[1:]] == [str(a) for a in artifacts]
    assert [r["name"] for r in rows] == ["pytorch (reference)", "onnx fp32", "tflite int8"]
    for row in rows[1:]:
        assert row["export"] == "given" and row["parity"] == "pass" and row["images"] == 16
        assert row["size_bytes"] == Path(row["artifact"]).stat().st_size
    for row in rows:
        assert row["latency_median_ms"] > 0 and row["runs"] == RUNS and row["rounds"] == ROUNDS
    assert report["settings"]["labelled"] is True, "class names from the sidecars map the image folders"
    assert rows[0]["top1_accuracy"] is not None and rows[1]["top1_accuracy"] == pytest.approx(rows[0]["top1_accuracy"])


def test_an_artifact_without_sidecar_needs_variant_and_weights(given: Any, tiny: Any, tmp_path: Path) -> None:
    bare = _copy(given[2][0], tmp_path / "bare", sidecar=False)
    out = tmp_path / "out"
    run = run_cli(bench_command, bare, "--out", out)
    assert run.code == 2, run.stderr
    assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr
    assert f"cannot tell what {bare} was exported from" in run.stderr and "no sidecar" in run.stderr
    assert "error: --variant: " in run.stderr and "name its variant, and its weights or random initialisation" in run.stderr
    assert not out.exists()
    named = run_cli(
        bench_command,
        bare,
        "--variant",
        "auto",
        "--weights",
        tiny.checkpoint,
        "--count",
        4,
        "--runs",
        2,
        "--warmup",
        0,
        "--rounds",
        2,
        "--out",
        out,
        json_path=out / "bench.json",
    )
    assert named.code == 0, named.stderr
    assert [(r["name"], r["parity"]) for r in named.report["rows"]] == [
        ("pytorch (reference)", "reference"),  # type: ignore[index]
        ("onnx fp32", "pass"),
    ]


def test_artifacts_of_different_input_sizes_get_a_reference_each(given: Any, tiny: Any, tmp_path: Path) -> None:
    import convert

    small = convert.export(tiny.checkpoint, target="onnx", out_dir=tmp_path / "at64", input_size=64, labels=tiny.labels_file).path
    out = tmp_path / "out"
    run = run_cli(
        bench_command,
        given[2][0],
        small,
        "--count",
        4,
        "--runs",
        2,
        "--warmup",
        0,
        "--rounds",
        2,
        "--out",
        out,
        json_path=out / "bench.json",
    )
    assert run.code == 0, run.stderr
    rows = run.report["rows"]  # type: ignore[index]
    assert [(r["variant"], r["kind"]) for r in rows] == [
        (f"auto@{tiny.input_size}", "reference"),
        (f"auto@{tiny.input_size}", "ours"),
        ("auto@64", "reference"),
        ("auto@64", "ours"),
    ]
    assert [r["artifact"] for r in rows if r["kind"] == "ours"] == [str(given[2][0]), str(small)]
    assert all(r["parity"] == "pass" for r in rows if r["kind"] == "ours")
    assert [g["input_size"] for g in run.report["settings"]["references"]] == [tiny.input_size, 64]  # type: ignore[index]


@pytest.mark.parametrize("extra, flag", [(("--target", "onnx"), "--target"), (("--reexport",), "--reexport")])
def test_export_options_with_artifacts_are_a_usage_error(given: Any, tmp_path: Path, extra: tuple[str, ...], flag: str) -> None:
    out = tmp_path / "out"
    run = run_cli(bench_command, given[2][0], *extra, "--out", out)
    assert run.code == 2 and f"{flag}: says what to export" in run.stderr and run.stderr.strip().count("\n") == 0
    assert not out.exists()


def test_no_variant_and_no_artifacts_says_what_to_pass(tmp_path: Path) -> None:
    run = run_cli(bench_command, "--out", tmp_path / "out")
    assert (
        run.code == 2
        and "error: --variant: nothing to benchmark: name the variants" in run.stderr
        and "paths of exported artifacts" in run.stderr
    )


# ---- the rounds --------------------------------------------------------------------------------


class FakeTimer:
    """A model that answers at once and writes down when it ran, in a log all fakes share."""

    def __init__(self, name: str, log: list[tuple[str, int]], *, fail_on_call: int | None = None) -> None:
        self.name, self.log, self.fail_on_call, self.calls = name, log, fail_on_call, 0

    def time(self, runs: int) -> list[float]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise LatencyUnavailable(f"{self.name} crashed")
        self.log.append((self.name, runs))
        return [float(len(self.log))] * runs


def test_rounds_rotate_the_order_and_give_every_model_its_runs() -> None:
    names, runs, rounds = ["pytorch", "onnx", "tflite"], 11, 4
    log: list[tuple[str, int]] = []
    timed = run_rounds([FakeTimer(n, log) for n in names], rounds=rounds, runs=runs)
    per_round = [log[i : i + len(names)] for i in range(0, len(log), len(names))]
    assert len(per_round) == rounds
    firsts = [chunk[0][0] for chunk in per_round]
    assert firsts == [names[r % len(names)] for r in range(rounds)], "each round starts with the next model"
    for r, chunk in enumerate(per_round):
        assert [name for name, _ in chunk] == names[r % 3 :] + names[: r % 3]
        assert len({share for _, share in chunk}) == 1, "within a round every model does the same number of runs"
    for name, result in zip(names, timed):
        assert sum(share for n, share in log if n == name) == runs
        assert len(result.rounds) == rounds and sum(map(len, result.rounds)) == runs and not result.failure
    assert max(len(r) for r in timed[0].rounds) - min(len(r) for r in timed[0].rounds) <= 1
    with pytest.raises(ValueError):
        schedule(2, rounds=5, runs=4)


def test_a_model_that_fails_mid_rounds_drops_out_and_the_others_carry_on() -> None:
    log: list[tuple[str, int]] = []
    timed = run_rounds([FakeTimer("a", log), FakeTimer("b", log, fail_on_call=2), FakeTimer("c", log)], rounds=3, runs=6)
    assert timed[1].failure == "b crashed" and len(timed[1].rounds) == 1
    assert [len(t.rounds) for t in (timed[0], timed[2])] == [3, 3]
    assert [n for n, _ in log].count("b") == 1


MISBEHAVING = '''
import os
import time
from pathlib import Path

from convert import targets
from convert.targets import Loaded, RuntimeBase
from toy_target import ToyTarget


class MisbehavingRuntime(RuntimeBase):
    """Times fine for three calls, then does what its artifact file says: abort, hang, or go on."""

    def open(self, path, *, threads):
        mode, calls = Path(path).read_text().strip(), [0]

        def step():
            calls[0] += 1
            if calls[0] > 3 and mode == "abort":
                os.abort()
            if calls[0] > 3 and mode == "hang":
                time.sleep(600)

        return Loaded(lambda pixels: None, f"misbehaving ({mode})", lambda pixels: step)


class Misbehaving(ToyTarget):
    name = "misbehaving"
    suffix = ".misbehaving"
    runtime = MisbehavingRuntime()


if "misbehaving" not in targets.names():
    targets.register(Misbehaving())
'''


@pytest.fixture
def misbehaving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plugin target whose runtime aborts or hangs on request, importable by the timing children too."""
    (tmp_path / "bench_misbehaving_target.py").write_text(MISBEHAVING)
    monkeypatch.syspath_prepend(str(tmp_path))
    toy_known = "toy" in targets.names()
    importlib.import_module("bench_misbehaving_target")  # imports toy_target, which registers the toy target
    yield tmp_path
    targets.unregister("misbehaving")
    if not toy_known:  # other tests in this worker see only the targets they registered
        targets.unregister("toy")
    sys.modules.pop("bench_misbehaving_target", None)


def test_a_crashing_or_hanging_runtime_is_a_row_that_says_so(misbehaving: Path) -> None:
    models = []
    for mode in ("fine", "abort", "hang"):
        (misbehaving / f"{mode}.misbehaving").write_text(mode)
        models.append(Model("misbehaving", artifact=misbehaving / f"{mode}.misbehaving"))
    with Scratch.open() as scratch:
        fine, aborted, hung = measure_all(models, input_size=64, runs=4, warmup=1, rounds=2, threads=1, scratch=scratch, timeout_s=10)
    assert fine.latency is not None and fine.latency.runs == 4 and fine.latency.rounds == 2 and not fine.note
    assert fine.latency.runtime == "misbehaving (fine)"
    assert aborted.latency is None and aborted.note == "the runtime crashed with SIGABRT while timing the model"
    assert hung.latency is None and hung.note == "the runtime did not finish within 10 s"
