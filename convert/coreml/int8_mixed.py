"""The Core ML half of accuracy-aware W8A8 (:mod:`convert.int8.engine` decides): the executor, coremltools' passes.

The float package about to be quantised runs once in :class:`MILExecutor` over the calibration
images; every op output is sampled (:class:`convert.int8.ranges.RangeObserver`), which gives the
activation ranges by the calibration method and each quantised op's own error (its inputs and
output rounded to int8 with their ranges, against the float values). Ops then go back to fp16
through coremltools' per-op config: ``OptimizationConfig(op_name_configs={name: None})``, which
both activation passes (``insert_prefix/suffix_quantize_dequantize_pair``) read through
``config._get_op_config(op)``. Weights stay int8 (weight-only, :func:`quantize_weights`) in the
fp16 ops too, so the package stays about half the fp16 size whatever the choice.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convert.coreml.ctimport import import_coremltools, quiet
from convert.coreml.mil_executor import MILExecutor
from convert.coreml.quantize import ActivationStats, quantize_activations, quantize_weights, share_concat_ranges
from convert.int8.engine import Int8Options, QuantOp, quantise_int8
from convert.int8.ranges import RangeObserver, fake_quant, fake_quant_mse
from convert.int8.report import (
    ALONE_IMAGES,
    Int8Report,
    LayerError,
    Quality,
    SqnrSum,
    quality,
)

QUANTISED_TYPES: tuple[str, ...] = ("conv", "add", "avg_pool", "max_pool")
"""Ops coremltools' activation passes wrap in quantize/dequantize (``linear`` is excluded: the head)."""
REGION_OPS = 8
"""Consecutive quantised ops tried in fp16 together (about one residual sub-block)."""
SELECTION_IMAGES = 16
"""Calibration images each selection step runs through the executor (the executor is the cost)."""


@dataclass(frozen=True)
class MILOp:
    name: str
    op_type: str
    inputs: tuple[str, ...]
    output: str
    macs: int


class _Observer(RangeObserver):
    """Also remembers each tensor's per-image shape, for MAC counts."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: dict[str, tuple[int, ...]] = {}

    def __call__(self, name: str, value: Any) -> None:
        array = value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)
        self.shapes.setdefault(name, tuple(array.shape[1:]))
        for image in array:
            super().__call__(name, image)


def program_ops(package: Path, shapes: dict[str, tuple[int, ...]] | None = None) -> list[MILOp]:
    """The ops of ``package``'s main function that W8A8 can quantise, in program order, with MACs."""
    _, block = _main_block(package)
    consts = {op.outputs[0].name: op for op in block.operations if op.type == "const"}
    ops = []
    for op in block.operations:
        if op.type not in QUANTISED_TYPES:
            continue
        name = op.attributes["name"].immediateValue.tensor.strings.values[0] if "name" in op.attributes else op.outputs[0].name
        inputs = tuple(
            arg.name for key in ("x", "y") if key in op.inputs for arg in op.inputs[key].arguments if arg.name and arg.name not in consts
        )
        macs = 0
        if op.type == "conv" and shapes is not None and op.outputs[0].name in shapes:
            weight = consts.get(op.inputs["weight"].arguments[0].name)
            if weight is not None:
                dims = [int(d.constant.size) for d in weight.outputs[0].type.tensorType.dimensions]
                macs = int(np.prod(shapes[op.outputs[0].name])) * int(np.prod(dims[1:]))
        ops.append(MILOp(name, op.type, inputs, op.outputs[0].name, macs))
    return ops


def _main_block(package: Path) -> tuple[Any, Any]:
    from coremltools.proto import Model_pb2

    from convert.coreml.mil_executor import root_model_file

    import_coremltools()
    spec = Model_pb2.Model()
    spec.ParseFromString(root_model_file(Path(package)).read_bytes())
    function = spec.mlProgram.functions["main"]
    return function, function.block_specializations[function.opset]


def program_min_ios(package: Path) -> str:
    """The iOS release ``package``'s program targets (opset ``CoreML7`` is iOS 17)."""
    function, _ = _main_block(package)
    return str(int(function.opset.removeprefix("CoreML")) + 10)


def per_layer_errors(quantised: Path, float_package: Path, pixels: np.ndarray) -> list[LayerError]:
    """SQNR of every quantisable op's output in the W8A8 ``quantised`` against the fp16 ``float_package``, in program order.

    For ``shvit-check --per-layer``: the W8A8 package is made from the fp16 program of the same
    model, so its ops keep their output variables' names. One image at a time (memory: one image's
    activations of the float run). Values the W8A8 program holds rescaled are compared at the
    float model's scale (:meth:`MILExecutor.domain_factors`).
    """
    ops = program_ops(quantised)
    wanted = {op.output for op in ops}
    float_run, quant_run = MILExecutor(float_package), MILExecutor(quantised)
    int8, factors = quant_run.quantized_inputs(), quant_run.domain_factors()
    sums: dict[str, SqnrSum] = {}
    for start in range(len(pixels)):
        image = pixels[start : start + 1]
        reference: dict[str, Any] = {}

        def remember(name: str, value: Any, seen: dict[str, Any] = reference) -> None:
            if name in wanted:
                seen[name] = value

        float_run.run(float_run.image_feeds(image), observe=remember)

        def compare(name: str, value: Any, reference: dict[str, Any] = reference) -> None:
            if name in reference and tuple(reference[name].shape) == tuple(value.shape):
                sums.setdefault(name, SqnrSum()).add(reference[name].numpy(), value.numpy() / factors.get(name, 1.0))

        quant_run.run(quant_run.image_feeds(image), observe=compare)
    return [LayerError(op.name, op.op_type, "int8" if op.output in int8 else "fp16", sums[op.output].db) for op in ops if op.output in sums]


def observe(package: Path, pixels: np.ndarray) -> _Observer:
    """A sample of every float variable of the float ``package`` on the calibration ``pixels``."""
    observer = _Observer()
    executor = MILExecutor(package)
    executor.run(executor.image_feeds(pixels), observe=observer)
    return observer


def stats_for(observer: RangeObserver, method: str, package: Path) -> ActivationStats:
    """coremltools' activation stats (``rmin``/``rmax`` per variable) by ``method``, concat groups shared."""
    stats = {name: {"rmin": low, "rmax": high} for name, (low, high) in observer.ranges(method).items()}
    share_concat_ranges(stats, MILExecutor(package).concat_groups())
    return stats


def own_errors(ops: Sequence[MILOp], observer: RangeObserver, stats: ActivationStats) -> dict[str, float]:
    """Each op's own error (dB): rounding its float inputs and output to int8 with their ranges."""
    errors = {}
    for op in ops:
        noise = signal = 0.0
        for name in (*op.inputs, op.output):
            if name not in stats or name not in observer.samples:
                continue
            values = np.concatenate(observer.samples[name])
            noise += fake_quant_mse(values, stats[name]["rmin"], stats[name]["rmax"])
            signal += float(np.mean(values.astype(np.float64) ** 2))
        errors[op.name] = math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)
    return errors


def quantize(float_package: Path, stats: ActivationStats, *, keep_float: Sequence[str] = (), weights: bool = True) -> Any:
    """The W8A8 MLModel (not saved): activations int8 except ``keep_float`` ops, weights int8 unless ``weights=False``.

    Selection trials skip the weight pass: it is most of a trial's time, and per-channel int8
    weights move the logits far less than the activations do (the final model is measured with them).
    """
    ct = import_coremltools()
    with quiet():
        model = quantize_activations(ct.models.MLModel(str(float_package), skip_model_load=True), stats, keep_float=keep_float)
        return quantize_weights(model) if weights else model


def list_quantisable_ops(package: Path) -> list[str]:
    """MIL op names ``keep_float`` accepts for ``package`` (a float or W8A8 package of the model)."""
    return [op.name for op in program_ops(package)]


class CoreMLBackend:
    """The Core ML half of :func:`convert.int8.engine.quantise_int8`: coremltools' passes, the reference MIL executor.

    Keys are MIL op names, as coremltools' per-op config takes them. Selection trials skip the weight
    pass (most of a trial's time; per-channel int8 weights move the logits far less than activations),
    so the final model is measured again with its int8 weights.
    """

    label = "coreml"
    display = "Core ML"
    region_ops = REGION_OPS
    measure_alone = False
    """An executor run costs seconds per trial on full-size variants: regions rank by their ops' own errors."""
    trials_are_final = False

    def __init__(self, float_package: Path, pixels: np.ndarray, *, scratch: Path) -> None:
        self.package, self.scratch = float_package, scratch
        self.observer = observe(float_package, pixels)
        self.table = program_ops(float_package, self.observer.shapes)
        self.pixels = pixels[:SELECTION_IMAGES]
        self.reference = MILExecutor(float_package).logits(self.pixels)
        self.alone_pixels = pixels[:ALONE_IMAGES]
        self.stats: ActivationStats = {}
        self.runs = 0
        self._alone: tuple[MILExecutor, Any, str, np.ndarray] | None = None

    def ops(self) -> list[QuantOp]:
        return [QuantOp(op.name, op.name, op.op_type, op.macs, op.macs) for op in self.table]

    def use_ranges(self, method: str) -> None:
        self.stats = stats_for(self.observer, method, self.package)

    def own_errors(self) -> dict[str, float]:
        return own_errors(self.table, self.observer, self.stats)

    def quantize(self, keep_float: Sequence[str]) -> Any:
        return quantize(self.package, self.stats, keep_float=keep_float)

    def quality(self, model: Any) -> Quality:
        self.runs += 1
        path = self.scratch / f"trial-{self.runs}.mlpackage"
        model.save(str(path))
        try:
            return quality(self.reference, MILExecutor(path).logits(self.pixels))
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def trial(self, keep_float: Sequence[str]) -> Quality:
        return self.quality(quantize(self.package, self.stats, keep_float=keep_float, weights=False))

    def alone_int8(self, key: str) -> Quality:
        """The float package with only op ``key``'s inputs and output rounded to int8, in the executor (no coremltools pass)."""
        if self._alone is None:
            executor = MILExecutor(self.package)
            feeds, name = executor.image_feeds(self.alone_pixels), executor.logits_name()
            logits = np.asarray(executor.run(feeds, outputs=[name])[name], np.float32).reshape(len(self.alone_pixels), -1)
            self._alone = executor, feeds, name, logits
        executor, feeds, name, reference = self._alone
        op = next(op for op in self.table if op.name == key)
        rounded = {n: self.stats[n] for n in (*op.inputs, op.output) if n in self.stats}

        def rewrite(var: str, value: Any) -> Any:
            if var not in rounded:
                return value
            return torch.from_numpy(fake_quant(value.numpy(), rounded[var]["rmin"], rounded[var]["rmax"]))

        logits = executor.run(feeds, outputs=[name], rewrite=rewrite)[name]
        return quality(reference, np.asarray(logits, np.float32).reshape(len(self.alone_pixels), -1))

    def int8_mac_share(self, model: Any, kept: Sequence[str]) -> float:
        floats = set(kept)
        return 1 - sum(op.macs for op in self.table if op.name in floats) / (sum(op.macs for op in self.table) or 1)


def convert_w8a8(
    float_package: Path,
    pixels: np.ndarray,
    *,
    options: Int8Options | None = None,
    scratch: Path,
) -> tuple[Any, Int8Report]:
    """Accuracy-aware W8A8 MLModel of ``float_package`` (saved float classifier) by ``options`` (default: auto).

    ``full`` with ``minmax`` matches :func:`convert.coreml.quantize.quantize_activations` on
    :func:`convert.coreml.quantize.activation_stats`.
    """
    return quantise_int8(CoreMLBackend(float_package, pixels, scratch=scratch), options or Int8Options())
