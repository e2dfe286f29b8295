"""Weights-only compression of a converted Core AI program with coreai-opt (data-free, activations fp16).

coreai-opt 0.4.0's ``coreai_opt.coreai_utils.quantize_weights`` works on the ``AIProgram`` that
coreai-torch returns: every constant of at least :data:`MIN_WEIGHT_ELEMENTS` elements feeding a
``conv2d`` or a matmul becomes an integer constant behind a ``blockwise_shift_scale`` op (scale and
offset in the weights' own fp16), which the runtime expands once at load. The rest of the program,
activations included, stays fp16. Weights whose shape does not fit the scheme (a depthwise
convolution's single input channel, a channel count not divisible by the block) stay fp16;
coreai-opt logs each, and :func:`compress_weights` returns those lines instead of printing them.

4-bit palettisation (``palettize_weights``) is not offered. On an image-dependent S1 (cosine of the
logits to PyTorch, asset size against fp16) it was no better than int4 per block (0.987, 0.307×):
one table per tensor 0.964 (0.257×), with per-channel scales 0.978 (0.260×), one table per 16
output channels 0.986 (0.302×) after ~100 s of k-means on 2 cores; and its k-means needs
scikit-learn, which the ``coreai`` extra does not install.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from convert.coreai.deps import require

MIN_WEIGHT_ELEMENTS = 1024
"""Smaller weights (the stem's first convolution) stay fp16: coreai-opt's own default threshold."""
OPT_LOGGER = "coreai_opt"
_AXIS = re.compile(r"^On \d+\w* axis, the ")
DECOMPRESSION_OPS: tuple[str, ...] = ("blockwise_shift_scale", "lut_to_dense")
"""Ops that expand compressed constants (inputs all constant): run once at load, not per prediction."""
W8A8_REFUSED = (
    "int8 activations (W8A8) are not offered for Core AI: choose int8-weights or int4-weights "
    "(weights-only, activations fp16), fp16 or fp32"
)


@dataclass(frozen=True)
class WeightCompression:
    """One weights-only scheme: integer ``bits``, per output channel or per ``block`` input channels."""

    precision: str
    bits: int
    block: int | None
    symmetric: bool

    @property
    def dtype(self) -> str:
        return f"int{self.bits}"

    def describe(self) -> str:
        """``int4 weights per block of 32 input channels, asymmetric; activations fp16``."""
        grouping = f"per block of {self.block} input channels" if self.block else "per output channel"
        scheme = "symmetric" if self.symmetric else "asymmetric (zero point per block)" if self.block else "asymmetric"
        return f"{self.dtype} weights {grouping}, {scheme}; activations fp16"

    def record(self) -> dict[str, Any]:
        """What the sidecar and the asset metadata say about it."""
        return {
            "weights": self.dtype,
            "granularity": "per-block" if self.block else "per-channel",
            "block_size": self.block,
            "scheme": "symmetric" if self.symmetric else "asymmetric",
            "activations": "fp16",
            "min_weight_elements": MIN_WEIGHT_ELEMENTS,
            "tool": f"coreai-opt {_opt_version()}",
        }


COMPRESSIONS: dict[str, WeightCompression] = {
    "int8-weights": WeightCompression("int8-weights", 8, None, symmetric=True),
    "int4-weights": WeightCompression("int4-weights", 4, 32, symmetric=False),
}
"""Precision → scheme. int4 is asymmetric: on an image-dependent S1 its zero points (3% more bytes)
took the logits' cosine to PyTorch from 0.979 (symmetric) to 0.987."""


def compress_weights(program: Any, compression: WeightCompression) -> tuple[Any, list[str]]:
    """A compressed copy of ``program`` and coreai-opt's lines about the weights it left fp16."""
    utils = require("coreai_opt.coreai_utils")
    granularity = utils.CompressionGranularity.PER_BLOCK if compression.block else utils.CompressionGranularity.PER_CHANNEL
    with _captured(OPT_LOGGER) as lines:
        compressed = utils.quantize_weights(
            program,
            utils.DType(compression.dtype),
            qscheme=utils.QScheme.SYMMETRIC if compression.symmetric else utils.QScheme.ASYMMETRIC,
            granularity=granularity,
            block_size=compression.block or 32,
            weight_num_threshold=MIN_WEIGHT_ELEMENTS,
        )
    return compressed, lines


def skipped_summary(lines: list[str]) -> str:
    """``27 weights left fp16 (dim size 1 is not divisible by block size 32 ×18; ...)`` from coreai-opt's lines.

    coreai-opt logs why a weight does not fit (``Invalid block_sizes; On 1th axis, the dim size 1 is
    not divisible ...``) and then ``Failed to quantize op ... Skipped this op.``, sometimes with the
    reason inline after ``Detailed reason:``.
    """
    reasons: dict[str, int] = {}
    previous = ""
    for line in lines:
        if "Skipped" not in line:
            previous = line
            continue
        detail = line.partition("Detailed reason:")[2].strip() or previous or "no reason given"
        reason = _AXIS.sub("", detail.splitlines()[0].split("; ", 1)[-1]).split(". ")[0].rstrip(".")
        reasons[reason] = reasons.get(reason, 0) + 1
        previous = ""
    if not reasons:
        return ""
    total = sum(reasons.values())
    return f"{total} weight{'s' * (total != 1)} left fp16 ({'; '.join(f'{r} ×{n}' for r, n in reasons.items())})"


def _opt_version() -> str:
    return str(require("coreai_opt").__version__)


class _Lines(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _captured(name: str) -> Iterator[list[str]]:
    """Warnings logged to ``name`` while the block runs, collected instead of reaching stderr
    (handler and propagation restored afterwards)."""
    lines: list[str] = []
    logger = logging.getLogger(name)
    handler, propagate = _Lines(lines), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
