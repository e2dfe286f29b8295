"""Greedy choice of what to keep in float: the fewest candidates that bring int8 to a quality target.

Target-agnostic: the caller supplies candidates (single ops or runs of consecutive ops, each a list
of op names) and an ``evaluate(keep_float)`` that quantises with those ops left float and measures
the result on the calibration images. Runs of ops, not single ops, are the useful unit on SHViT:
a tensor stops being rounded only when its producer and every consumer are float, and the error is
spread over the whole depth (one op alone float moves the logits' cosine by < 0.005).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from convert.int8.report import Quality, QualityTarget

log = logging.getLogger(__name__)

Evaluate = Callable[[Sequence[str]], Quality]

MAX_EVALUATIONS = 64
"""Quantise-and-measure runs one selection may spend (each is ~2 s for S1, ~6 s for S3)."""
PRUNE_TRIALS = 6
"""Chosen candidates (least helpful first) tried back in int8 once the target is met."""


@dataclass
class Candidate:
    """Ops that go float together; ``alone_float`` is the model with only them float."""

    label: str
    members: list[str]
    macs: int
    alone_float: Quality | None = None
    chosen: bool = False
    prior: float = 0.0
    """Expected help before measuring (e.g. the members' summed own noise): the order when not measured."""

    def gain(self, baseline: Quality) -> float:
        if self.alone_float is None:
            return self.prior
        return (self.alone_float.min_cosine - baseline.min_cosine) + (self.alone_float.top1 - baseline.top1)


@dataclass
class Selection:
    keep_float: list[str]
    quality: Quality
    met: bool
    evaluations: int
    notes: list[str] = field(default_factory=list)


def select_float_ops(
    candidates: Sequence[Candidate],
    evaluate: Evaluate,
    *,
    target: QualityTarget,
    aim_for: QualityTarget | None = None,
    baseline: Quality,
    total_macs: int,
    max_evaluations: int = MAX_EVALUATIONS,
    measure_alone: bool = True,
) -> Selection:
    """Measure each candidate alone float, add them best first until ``target`` is met, drop the unneeded.

    ``measure_alone=False`` ranks by ``Candidate.prior`` instead (one evaluation per candidate saved,
    for runtimes where an evaluation costs tens of seconds).

    ``aim_for`` is what the calibration images must show for ``target`` to hold on unseen images (default:
    ``target``); notes name both. Candidates whose MACs would take the float share past ``target.max_float_mac_share`` are
    skipped; when the target is still not met the result says ``met=False`` and carries the best
    model found, and the caller decides (weight-only int8 is always reachable).
    """
    wanted, target = target, aim_for or target
    if target.met_by(baseline):
        return Selection([], baseline, True, 0)
    evaluations = 0
    for candidate in candidates if measure_alone else ():
        if evaluations >= max_evaluations // 2:
            break
        candidate.alone_float = evaluate(candidate.members)
        evaluations += 1
        log.debug("alone float %s: %s", candidate.label, candidate.alone_float)
    ranked = [c for c in sorted(candidates, key=lambda c: -c.gain(baseline))]
    allowed, macs = [], 0
    for candidate in ranked:  # the float budget, best candidates first
        if (macs + candidate.macs) / max(total_macs, 1) <= target.max_float_mac_share:
            allowed.append(candidate)
            macs += candidate.macs
    notes: list[str] = []
    # Error is spread along the depth, so single additions move it little: search the shortest
    # prefix of the ranking that meets the target (quality grows with the prefix, near enough).

    def prefix(count: int) -> list[str]:
        return [name for c in allowed[:count] for name in c.members]

    low, high = 0, len(allowed)
    current = evaluate(prefix(high)) if allowed else baseline
    evaluations += bool(allowed)
    log.debug("float all %d candidates: %s", high, current)
    if target.met_by(current):
        while high - low > 1 and evaluations < max_evaluations:
            middle = (low + high) // 2
            trial = evaluate(prefix(middle))
            evaluations += 1
            log.debug("float %d of %d candidates: %s", middle, len(allowed), trial)
            if target.met_by(trial):
                high, current = middle, trial
            else:
                low = middle
    chosen = allowed[:high]
    met = target.met_by(current)
    if met:
        for candidate in sorted(chosen, key=lambda c: c.gain(baseline))[:PRUNE_TRIALS]:
            if evaluations >= max_evaluations or len(chosen) == 1:
                break
            rest = [c for c in chosen if c is not candidate]
            trial = evaluate([name for c in rest for name in c.members])
            evaluations += 1
            if target.met_by(trial):
                chosen, current = rest, trial
    else:
        aimed = "" if target == wanted else f" (asking {target.describe()} of the calibration images)"
        notes.append(
            f"target {wanted.describe()}{aimed} not reached with {sum(c.macs for c in chosen) / max(total_macs, 1):.0%} of MACs float "
            f"(best on the calibration images: min cosine {current.min_cosine:.4f}, top-1 {current.top1:.0%})"
        )
    for candidate in chosen:
        candidate.chosen = True
    return Selection([name for c in chosen for name in c.members], current, met, evaluations, notes)
