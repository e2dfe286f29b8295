"""Activation ranges for int8 calibration: min/max (as converters do), percentile, MSE-optimal.

Converters record each tensor's running min/max, so one outlier pixel in one calibration image sets
the step size for every image. Clipping the range trades a little clipping error on rare values for
finer steps on all the others; which trade is best is measured (see :data:`METHODS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METHODS: tuple[str, ...] = ("minmax", "percentile", "mse")
DEFAULT_METHOD = "percentile"
"""Measured best on image-dependent SHViT-S1 in TFLite full int8 (held-out min cosine: min/max
0.82, percentile 0.93, MSE 0.92; benchmarks/bench_int8.py --compare-methods measures it again)."""

PERCENTILE = 99.99
SAMPLES_PER_TENSOR_PER_IMAGE = 16384
LEVELS = 255  # int8 steps between the range ends
MSE_GRID = np.geomspace(0.02, 1.0, 48)
MSE_SAMPLES = 1 << 16  # values the MSE search rounds per candidate range
SEED = 0


@dataclass
class RangeObserver:
    """Exact running min/max of every tensor it sees, and a fixed-size random sample of its values."""

    samples_per_image: int = SAMPLES_PER_TENSOR_PER_IMAGE
    minmax: dict[str, list[float]] = field(default_factory=dict)
    samples: dict[str, list[np.ndarray]] = field(default_factory=dict)
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(SEED))

    def __call__(self, name: str, value: np.ndarray) -> None:
        flat = np.asarray(value, np.float32).reshape(-1)
        if not flat.size:
            return
        low, high = float(flat.min()), float(flat.max())
        seen = self.minmax.get(name)
        if seen is None:
            self.minmax[name] = [low, high]
        else:
            seen[0], seen[1] = min(seen[0], low), max(seen[1], high)
        if flat.size > self.samples_per_image:
            flat = flat[self._rng.integers(0, flat.size, self.samples_per_image)]
        self.samples.setdefault(name, []).append(flat.copy())

    def ranges(self, method: str) -> dict[str, tuple[float, float]]:
        """``{tensor: (low, high)}`` by ``method`` (one of :data:`METHODS`)."""
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}: choose one of {', '.join(METHODS)}")
        out = {}
        for name, (low, high) in self.minmax.items():
            if method == "minmax":
                out[name] = (low, high)
                continue
            values = np.concatenate(self.samples[name])
            out[name] = percentile_range(values, low, high) if method == "percentile" else mse_range(values, low, high)
        return out


def percentile_range(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The central :data:`PERCENTILE` % of the values (never wider than the min/max)."""
    lo, hi = np.percentile(values, [100 - PERCENTILE, PERCENTILE])
    return max(float(lo), low), min(float(hi), high)


def fake_quant(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` rounded to :data:`LEVELS` steps over [low, high] and back (zero kept exact): what int8 stores."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / LEVELS or 1.0
    zero = np.round(-low / scale)
    return ((np.clip(np.round(values / scale) + zero, 0, LEVELS) - zero) * scale).astype(values.dtype, copy=False)


def fake_quant_mse(values: np.ndarray, low: float, high: float, weights: np.ndarray | None = None) -> float:
    """Mean squared error of rounding ``values`` to :data:`LEVELS` steps over [low, high] (zero kept exact)."""
    return float(np.average((fake_quant(values, low, high) - values) ** 2, weights=weights))


def _mse_sample(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """At most about :data:`MSE_SAMPLES` values with weights: the tail (rare, but it sets the clipping
    error) kept whole, the bulk subsampled and weighted up to its true count."""
    if values.size <= MSE_SAMPLES:
        return values, None
    magnitude = np.abs(values)
    tail = magnitude > np.quantile(magnitude, 1 - 0.1 * MSE_SAMPLES / values.size)
    bulk = values[~tail]
    picked = bulk[np.random.default_rng(SEED).integers(0, bulk.size, MSE_SAMPLES)]
    weights = np.concatenate([np.full(picked.size, bulk.size / picked.size), np.ones(int(tail.sum()))])
    return np.concatenate([picked, values[tail]]), weights


def mse_range(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The clipped range with the least rounding + clipping MSE on the sampled values.

    Each end shrinks by a factor from :data:`MSE_GRID` (one end at a time, then the other once more);
    ranges only ever shrink, so a tensor whose values fill its range keeps it.
    """
    values, weights = _mse_sample(values)
    best_low, best_high = low, high
    for _ in range(2):
        errors = [fake_quant_mse(values, best_low, high * f, weights) for f in MSE_GRID]
        best_high = high * float(MSE_GRID[int(np.argmin(errors))])
        errors = [fake_quant_mse(values, low * f, best_high, weights) for f in MSE_GRID]
        best_low = low * float(MSE_GRID[int(np.argmin(errors))])
    return best_low, best_high
