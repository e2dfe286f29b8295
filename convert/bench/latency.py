"""Host latency in the runtime that will run each model: every model of a bench timed in interleaved rounds.

Each model lives in a child process of its own for the whole measurement: no thread pools, allocator
state or imported libraries are shared between ONNX Runtime, LiteRT and PyTorch (TensorFlow and
triton, for one, do not mix), and a native abort or a hang becomes a row that says so. All children
load and warm up first; then, round after round, each model does its share of the timed runs, in an
order that rotates every round. On a shared machine the load drifts over minutes: timing models one
after another charges that drift to whichever ran at the time, rounds spread it over all of them, and
a speed-up taken within each round (two medians measured minutes apart never meet) cancels most of it.

Each child is a served :class:`convert.io.child.Child`: it loads its model once, then answers ``time(runs=N)``.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from convert import targets
from convert.io.child import DEFAULT_TIMEOUT_S, Child, ChildFailure, needs_coremltools
from convert.io.scratch import Scratch
from convert.validate.runner import child_target

DEFAULT_ROUNDS = 5
PYTORCH = "pytorch"
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
    """One model loaded in its runtime in a long-lived child process, serving timed runs (:mod:`convert.io.child`)."""

    def __init__(self, model: Model, *, input_size: int, threads: int, scratch: Scratch, timeout_s: float) -> None:
        self.runtime = ""
        where = {"module": PYTORCH, "name": ""}
        if model.kind != PYTORCH:
            target = targets.get(model.kind)
            where = {"module": type(target).__module__, "name": target.name}
        spec = {
            **where,
            "artifact": model.artifact,
            "variant": model.variant,
            "weights": model.weights,
            "seed": model.seed,
            "num_classes": model.num_classes,
            "input_size": input_size,
            "threads": threads,
        }
        self.child = Child(
            "convert.bench.latency:TimedModel",
            args=spec,
            serve=True,
            threads=threads,
            env=scratch.child_env(),
            timeout_s=timeout_s,
            preload_coremltools=needs_coremltools(model.artifact),
        )

    def _ask(self, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except ChildFailure as exc:
            raise LatencyUnavailable(exc.describe("the runtime", "while timing the model")) from None

    def ready(self) -> str:
        """Wait until the model is loaded; the runtime's description."""
        self._ask(self.child.result)
        self.runtime = str(self._ask(lambda: self.child.call("runtime")))
        return self.runtime

    def time(self, runs: int) -> list[float]:
        return [float(t) for t in self._ask(lambda: self.child.call("time", runs=runs))]

    def kill(self) -> None:
        self.child.kill()

    def close(self) -> None:
        self.child.close()


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
    children: dict[int, _RuntimeChild] = {}
    try:
        for index, model in enumerate(models):
            reason = targets.get(model.kind).runtime.latency_unavailable() if model.kind != PYTORCH else None
            if reason:
                results[index] = Measurement(note=reason)
                continue
            children[index] = _RuntimeChild(model, input_size=input_size, threads=threads, scratch=scratch, timeout_s=timeout_s)
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
                results[index] = Measurement(Latency.of_rounds(got.rounds, warmup=warmup, threads=threads, runtime=children[index].runtime))
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


class TimedModel:
    """In the child: the model loaded in its runtime (or PyTorch), timed on request."""

    def __init__(self, **spec: Any) -> None:
        if spec["module"] == PYTORCH:
            self.step, self._runtime = _pytorch(spec)
        else:
            loaded = child_target(spec["module"], spec["name"]).runtime.open(Path(spec["artifact"]), threads=spec["threads"])
            self.step, self._runtime = loaded.step(_pixels(spec["input_size"])), loaded.runtime

    def runtime(self) -> str:
        return self._runtime

    def time(self, *, runs: int) -> list[float]:
        return time_runs(self.step, runs=runs)
