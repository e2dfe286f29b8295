"""Host latency in the runtime that will run each model: every model of a bench timed in interleaved rounds.

Each model lives in a child process of its own for the whole measurement: no thread pools, allocator
state or imported libraries are shared between ONNX Runtime, LiteRT and PyTorch (TensorFlow and
triton, for one, do not mix), and a native abort or a hang becomes a row that says so. All children
load and warm up first; then, round after round, each model does its share of the timed runs, in an
order that rotates every round. On a shared machine the load drifts over minutes: timing models one
after another charges that drift to whichever ran at the time, rounds spread it over all of them, and
a speed-up taken within each round (two medians measured minutes apart never meet) cancels most of it.

The child protocol is line-based: the parent writes ``time N`` (or ``quit``) to the child's stdin, the
child answers each with one JSON line on its stdout (the first, unasked, names its runtime once the
model is loaded). Everything else a runtime prints goes to a log file the parent reads on failure.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from convert import targets
from convert.io.child import ChildFailure, last_error_line, report_child_error
from convert.io.scratch import Scratch
from convert.validate.runner import child_target

DEFAULT_TIMEOUT_S = 900.0
"""Longest wait for one reply of a child: loading the model, its warm-up, or one round's share of runs."""
DEFAULT_ROUNDS = 5
PYTORCH = "pytorch"
_QUIT_TIMEOUT_S = 10.0
_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Latency:
    """One model's timed runs: figures over all of them, and each round's median (what speed-ups compare)."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    runs: int
    warmup: int
    threads: int
    runtime: str
    round_medians_ms: tuple[float, ...] = ()

    @property
    def rounds(self) -> int:
        return len(self.round_medians_ms)

    @classmethod
    def of_rounds(cls, rounds: Sequence[Sequence[float]], *, warmup: int, threads: int, runtime: str) -> Latency:
        """Figures of the milliseconds measured in each round."""
        times = np.asarray([t for chunk in rounds for t in chunk], dtype=np.float64)
        return cls(
            median_ms=float(np.median(times)),
            p90_ms=float(np.percentile(times, 90)),
            mean_ms=float(times.mean()),
            min_ms=float(times.min()),
            max_ms=float(times.max()),
            runs=int(times.size),
            warmup=warmup,
            threads=threads,
            runtime=runtime,
            round_medians_ms=tuple(float(np.median(chunk)) for chunk in rounds),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Speedup:
    """How many times faster than the reference, per round (both medians from the same round), and over rounds."""

    per_round: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(np.median(self.per_round))

    @property
    def low(self) -> float:
        return min(self.per_round)

    @property
    def high(self) -> float:
        return max(self.per_round)


def speedup(reference: Latency, model: Latency) -> Speedup | None:
    """``reference``'s median over ``model``'s, round by round; None unless both were timed in the same rounds."""
    if not reference.round_medians_ms or len(reference.round_medians_ms) != len(model.round_medians_ms):
        return None
    return Speedup(tuple(r / m for r, m in zip(reference.round_medians_ms, model.round_medians_ms)))


class LatencyUnavailable(Exception):
    """No latency for this row, with the reason a user reads in its place (crash, platform)."""


@dataclass(frozen=True)
class Model:
    """One model to time: the PyTorch reference (``kind`` ``pytorch``, from ``variant``/``weights``/``seed``) or an
    artifact in its target's runtime (``kind`` the target's name)."""

    kind: str
    artifact: Path | None = None
    variant: str | None = None
    weights: str | None = None
    seed: int | None = None
    num_classes: int = 1000


@dataclass(frozen=True)
class Measurement:
    """A model's latency, or why there is none."""

    latency: Latency | None = None
    note: str = ""


def host_description() -> str:
    """CPU model and core count: absolute latencies only mean something next to them."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


# ---- the rounds ------------------------------------------------------------------------------


class Timer(Protocol):
    """A loaded, warmed-up model: ``time(n)`` runs it ``n`` times and returns each run's milliseconds."""

    def time(self, runs: int) -> list[float]: ...


def schedule(models: int, *, rounds: int, runs: int) -> list[list[tuple[int, int]]]:
    """Per round, ``(model index, runs)`` in the order they run: the runs split as evenly as the rounds allow
    (earlier rounds take the remainder), the order rotated by one model each round so none always goes first."""
    if rounds < 1 or runs < rounds:
        raise ValueError(f"{runs} runs cannot fill {rounds} rounds")
    shares = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    return [[((r + i) % models, shares[r]) for i in range(models)] for r in range(rounds)]


@dataclass
class Timed:
    """What the rounds measured of one model: each round's milliseconds, or why it stopped."""

    rounds: list[list[float]] = field(default_factory=list)
    failure: str = ""


def run_rounds(timers: Sequence[Timer], *, rounds: int, runs: int) -> list[Timed]:
    """Every timer through the rounds of :func:`schedule`; one that fails is dropped from the rounds that remain
    and keeps its reason (the others carry on, so one crashing runtime costs only its own row)."""
    timed = [Timed() for _ in timers]
    for number, plan in enumerate(schedule(len(timers), rounds=rounds, runs=runs), 1):
        _logger.debug(f"round {number}/{rounds}: order {[i for i, _ in plan]}")
        for index, share in plan:
            if timed[index].failure:
                continue
            try:
                timed[index].rounds.append(timers[index].time(share))
            except LatencyUnavailable as exc:
                timed[index].failure = str(exc)
    return timed


def effective_rounds(rounds: int, runs: int) -> int:
    """Rounds actually run: at least one timed run per model per round."""
    return max(1, min(rounds, runs))


# ---- the children ----------------------------------------------------------------------------


class _RuntimeChild:
    """One model loaded in its runtime in a long-lived child process (see the module's protocol)."""

    def __init__(self, model: Model, *, input_size: int, threads: int, log_path: Path, env: dict[str, str], timeout_s: float) -> None:
        self.model, self.timeout_s, self.log_path = model, timeout_s, log_path
        self.runtime = ""
        where = [PYTORCH, ""]
        if model.kind != PYTORCH:
            target = targets.get(model.kind)
            where = [type(target).__module__, target.name]
        spec = {
            "where": where,
            "artifact": str(model.artifact) if model.artifact else None,
            "variant": model.variant,
            "weights": model.weights,
            "seed": model.seed,
            "num_classes": model.num_classes,
            "input_size": input_size,
            "threads": threads,
        }
        self._log: IO[bytes] = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "convert.bench.latency", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            bufsize=1,
        )
        self._replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"bench-{model.kind}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def _reply(self) -> dict[str, Any]:
        """The child's next JSON line; a timeout, a death or an error line becomes LatencyUnavailable."""
        try:
            line = self._replies.get(timeout=self.timeout_s)
        except queue.Empty:
            self.kill()
            raise LatencyUnavailable(ChildFailure(timeout_s=self.timeout_s).describe("the runtime", "")) from None
        if line is None:
            raise LatencyUnavailable(self._failure().describe("the runtime", "while timing the model"))
        return json.loads(line)

    def _failure(self) -> ChildFailure:
        code = self.proc.wait()
        if code < 0:
            return ChildFailure(signal_name=signal.Signals(-code).name)
        self._log.flush()
        error = last_error_line(self.log_path.read_text(errors="replace")) if self.log_path.exists() else ""
        return ChildFailure(error=error or f"the runtime exited with code {code} while timing the model")

    def ready(self) -> str:
        """Wait until the model is loaded; the runtime's description."""
        self.runtime = str(self._reply()["runtime"])
        return self.runtime

    def time(self, runs: int) -> list[float]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"time {runs}\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise LatencyUnavailable(self._failure().describe("the runtime", "while timing the model")) from None
        return [float(t) for t in self._reply()["times_ms"]]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        """Ask the child to quit; kill it if it does not (or if we are being interrupted)."""
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=_QUIT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        finally:
            self.kill()
            self._log.close()


def _child_env(threads: int, scratch: Scratch) -> dict[str, str]:
    """As :func:`convert.io.child.run_child` gives its children (plugin targets importable), one thread pool size."""
    search_path = os.pathsep.join(p for p in sys.path if p)
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": search_path, "OMP_NUM_THREADS": str(threads), **scratch.child_env()}


def measure_all(
    models: Sequence[Model],
    *,
    input_size: int,
    runs: int,
    warmup: int,
    rounds: int,
    threads: int,
    scratch: Scratch,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Measurement]:
    """Every model timed in interleaved rounds, each in its own runtime's child process; one Measurement each, in order.

    All children load at once (untimed), then warm up one after another, then go through the rounds.
    A model whose target cannot be timed here, or whose child fails, gets the one-line reason instead.
    """
    rounds = effective_rounds(rounds, runs)
    results = [Measurement() for _ in models]
    with scratch.temporary("shvit-bench-") as tmp:
        children: dict[int, _RuntimeChild] = {}
        try:
            env = _child_env(threads, scratch)
            for index, model in enumerate(models):
                reason = targets.get(model.kind).latency_unavailable() if model.kind != PYTORCH else None
                if reason:
                    results[index] = Measurement(note=reason)
                    continue
                children[index] = _RuntimeChild(
                    model, input_size=input_size, threads=threads, log_path=tmp / f"child-{index}.log", env=env, timeout_s=timeout_s
                )
            for index, child in list(children.items()):
                try:
                    child.ready()
                    if warmup:
                        child.time(warmup)
                except LatencyUnavailable as exc:
                    results[index] = Measurement(note=str(exc))
                    child.close()
                    del children[index]
            order = list(children)
            timed = run_rounds([children[i] for i in order], rounds=rounds, runs=runs)
            for index, got in zip(order, timed):
                if got.failure:
                    results[index] = Measurement(note=got.failure)
                else:
                    results[index] = Measurement(
                        Latency.of_rounds(got.rounds, warmup=warmup, threads=threads, runtime=children[index].runtime)
                    )
        except BaseException:  # Ctrl-C or a bug: no child may outlive the command, none gets time to linger
            for child in children.values():
                child.kill()
            raise
        finally:
            for child in children.values():
                child.close()
    return results


def measure(
    kind: str,
    *,
    input_size: int,
    runs: int,
    warmup: int,
    threads: int,
    scratch: Scratch,
    artifact: Path | None = None,
    variant: str | None = None,
    weights: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Latency:
    """Latency of one model alone (one round): ``kind`` is ``pytorch`` (the reference, from ``variant`` and
    ``weights``) or a target's name (``artifact``); raises LatencyUnavailable with a one-line reason."""
    (result,) = measure_all(
        [Model(kind, artifact=artifact, variant=variant, weights=weights)],
        input_size=input_size,
        runs=runs,
        warmup=warmup,
        rounds=1,
        threads=threads,
        scratch=scratch,
        timeout_s=timeout_s,
    )
    if result.latency is None:
        raise LatencyUnavailable(result.note)
    return result.latency


# ---- inside the subprocess -------------------------------------------------------------------


def time_runs(step: Callable[[], object], *, runs: int, warmup: int = 0) -> list[float]:
    """Milliseconds of ``runs`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _pixels(size: int) -> np.ndarray:
    import calib

    return calib.synthetic_images(1, size, seed=0)


def _pytorch(spec: dict[str, Any]) -> tuple[Callable[[], object], str]:
    import torch

    import shvit

    torch.set_num_threads(spec["threads"])
    weights = spec["weights"]
    model = shvit.create_model(
        spec["variant"], weights=weights, num_classes=spec.get("num_classes", 1000), seed=spec.get("seed") if weights is None else None
    )
    x = torch.from_numpy(shvit.normalize(_pixels(spec["input_size"])))

    def step() -> object:
        with torch.inference_mode():
            return model(x)

    return step, f"PyTorch {torch.__version__.split('+')[0]} eager (unfused), {spec['threads']} thread(s)"


def _load(spec: dict[str, Any]) -> tuple[Callable[[], object], str]:
    module, name = spec["where"]
    if module == PYTORCH:
        return _pytorch(spec)
    target = child_target(module, name)
    return target.timer(Path(spec["artifact"]), _pixels(spec["input_size"]), threads=spec["threads"])


def _serve(spec_json: str) -> int:
    """The child: load, say so, then answer ``time N`` until ``quit`` or the end of stdin."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a runtime prints goes to the log, never into the protocol
    try:
        step, runtime = _load(json.loads(spec_json))
        protocol.write(json.dumps({"runtime": runtime}) + "\n")
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "quit":
                break
            if command != "time":
                raise ValueError(f"unknown command {line.strip()!r}")
            protocol.write(json.dumps({"times_ms": time_runs(step, runs=int(argument))}) + "\n")
    except Exception as exc:  # reported to the parent as one line
        report_child_error(exc)
        return 1
    return 0


if __name__ == "__main__":
    from convert.io.scratch import exit_with_parent

    exit_with_parent()
    if ".mlpackage" in sys.argv[1]:
        from convert.process import preload_coremltools

        preload_coremltools()
    sys.exit(_serve(sys.argv[1]))
