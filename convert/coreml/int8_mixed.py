"""Accuracy-aware Core ML W8A8: per-op errors from the reference executor, ops kept fp16 by op selection.

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

import logging
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
from convert.errors import ArgumentError
from convert.int8.ranges import DEFAULT_METHOD, METHODS, RangeObserver, fake_quant, fake_quant_mse
from convert.int8.report import (
    ALONE_IMAGES,
    COREML_INT8_TARGET,
    Int8Report,
    LayerError,
    OpSensitivity,
    Quality,
    QualityTarget,
    SqnrSum,
    aim,
    most_sensitive,
    quality,
)
from convert.int8.select import Candidate, select_float_ops

log = logging.getLogger(__name__)

QUANTISED_TYPES: tuple[str, ...] = ("conv", "add", "avg_pool", "max_pool")
"""Ops coremltools' activation passes wrap in quantize/dequantize (``linear`` is excluded: the head)."""
REGION_OPS = 8
"""Consecutive quantised ops tried in fp16 together (about one residual sub-block)."""
SELECTION_IMAGES = 16
"""Calibration images each selection step runs through the executor (the executor is the cost)."""


@dataclass(frozen=True)
class CoreMLInt8Options:
    """``mode`` full|auto, MIL op names forced fp16, the target, the calibration method."""

    mode: str = "auto"
    keep_float: tuple[str, ...] = ()
    target: QualityTarget = COREML_INT8_TARGET
    calibration: str = DEFAULT_METHOD
    compare_methods: bool = False
    measure_alone: bool = False
    """Also measure each region alone in fp16 (one executor run each); by default regions are ranked
    by their ops' own errors, which saves most of the time on full-size variants."""


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

    from convert.coreml.mil_executor import _root_model_file

    import_coremltools()
    spec = Model_pb2.Model()
    spec.ParseFromString(_root_model_file(Path(package)).read_bytes())
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


def measure_alone_int8(
    sensitivities: Sequence[OpSensitivity],
    ops: Sequence[MILOp],
    float_package: Path,
    stats: ActivationStats,
    pixels: np.ndarray,
    *,
    forced: Sequence[str] = (),
) -> None:
    """Set ``alone_int8`` of the most sensitive ops: the float package with only that op's inputs and output rounded to int8.

    One executor run per op, the rounding done in the executor (no coremltools pass, which costs
    seconds per trial); weights stay float, so this is the op's activation cost alone.
    """
    executor = MILExecutor(float_package)
    feeds, name = executor.image_feeds(pixels), executor.logits_name()
    reference = np.asarray(executor.run(feeds, outputs=[name])[name], np.float32).reshape(len(pixels), -1)
    by_name = {op.name: op for op in ops}
    for sensitivity in most_sensitive(list(sensitivities), also=forced):
        op = by_name[sensitivity.name]
        rounded = {n: stats[n] for n in (*op.inputs, op.output) if n in stats}

        def rewrite(var: str, value: Any, rounded: dict[str, Any] = rounded) -> Any:
            if var not in rounded:
                return value
            return torch.from_numpy(fake_quant(value.numpy(), rounded[var]["rmin"], rounded[var]["rmax"]))

        logits = executor.run(feeds, outputs=[name], rewrite=rewrite)[name]
        sensitivity.alone_int8 = quality(reference, np.asarray(logits, np.float32).reshape(len(pixels), -1))
        log.debug("alone int8 %s: %s", sensitivity.name, sensitivity.alone_int8)


def list_quantisable_ops(package: Path) -> list[str]:
    """MIL op names ``keep_float`` accepts for ``package`` (a float or W8A8 package of the model)."""
    return [op.name for op in program_ops(package)]


def convert_w8a8(
    float_package: Path,
    pixels: np.ndarray,
    *,
    options: CoreMLInt8Options = CoreMLInt8Options(),
    scratch: Path,
) -> tuple[Any, Int8Report]:
    """Accuracy-aware W8A8 MLModel of ``float_package`` (saved float classifier) and its per-op report.

    ``full`` with ``minmax`` matches :func:`convert.coreml.quantize.quantize_activations` on
    :func:`convert.coreml.quantize.activation_stats`. ``auto`` keeps the fewest op regions fp16 that
    meet ``options.target`` on (up to :data:`SELECTION_IMAGES` of) the calibration images; past the
    float budget the outcome is ``int8-weights`` and every op is fp16 (weight-only int8).
    """
    if options.mode not in ("auto", "full"):
        raise ValueError(f"unknown int8 mode {options.mode!r}: choose auto or full")
    observer = observe(float_package, pixels)
    ops = program_ops(float_package, observer.shapes)
    unknown = [n for n in options.keep_float if n not in {op.name for op in ops}]
    if unknown:
        sample = ", ".join(op.name for op in ops[:3])
        raise ArgumentError(
            f"no quantisable Core ML op named {unknown[0]!r} for {{keep_float}}: the valid names (e.g. {sample}) are "
            "listed in any int8 export's .json sidecar under export.int8.ops",
            argument="keep_float",
        )
    chosen_pixels = pixels[:SELECTION_IMAGES]
    reference = MILExecutor(float_package).logits(chosen_pixels)
    counter = [0]

    def run(model: Any) -> Quality:
        counter[0] += 1
        path = scratch / f"trial-{counter[0]}.mlpackage"
        model.save(str(path))
        try:
            return quality(reference, MILExecutor(path).logits(chosen_pixels))
        finally:
            shutil.rmtree(path, ignore_errors=True)

    methods = {}
    for method in METHODS if options.compare_methods else ():
        methods[method] = run(quantize(float_package, stats_for(observer, method, float_package), keep_float=options.keep_float))
        log.info("calibration %s: %s", method, methods[method])
    stats = stats_for(observer, options.calibration, float_package)
    forced = list(options.keep_float)
    model = quantize(float_package, stats, keep_float=forced)
    full = methods.get(options.calibration) or run(model)
    errors = own_errors(ops, observer, stats)
    total = sum(op.macs for op in ops) or 1
    sensitivities = [OpSensitivity(op.name, op.op_type, op.macs, errors[op.name], kept_float=op.name in forced) for op in ops]
    report = Int8Report(
        target="coreml",
        mode=options.mode,
        calibration=options.calibration,
        quality_target=options.target,
        full_int8=full,
        final=full,
        keep_float=list(forced),
        int8_mac_share=1 - sum(op.macs for op in ops if op.name in forced) / total,
        outcome="int8",
        ops=sensitivities,
        calibration_methods=methods,
        evaluations=counter[0],
    )
    if options.mode == "full":
        return model, report
    measure_alone_int8(sensitivities, ops, float_package, stats, pixels[:ALONE_IMAGES], forced=forced)
    free = [op for op in ops if op.name not in forced]
    candidates = [
        Candidate(
            label=f"{chunk[0].name} … {chunk[-1].name}",
            members=[op.name for op in chunk],
            macs=sum(op.macs for op in chunk),
            prior=sum(10 ** (-errors[op.name] / 10) for op in chunk if math.isfinite(errors[op.name])),
        )
        for chunk in (free[i : i + REGION_OPS] for i in range(0, len(free), REGION_OPS))
    ]
    selection = select_float_ops(
        candidates,
        lambda names: run(quantize(float_package, stats, keep_float=[*forced, *names], weights=False)),
        target=options.target,
        aim_for=aim(options.target),
        baseline=full,
        total_macs=total,
        measure_alone=options.measure_alone,
    )
    kept = [*forced, *selection.keep_float]
    if not selection.met:
        kept = [op.name for op in ops]
        report.outcome = "int8-weights"
    model = quantize(float_package, stats, keep_float=kept) if kept else model
    region_of = {name: c.label for c in candidates for name in c.members}
    for sensitivity in sensitivities:
        sensitivity.kept_float = sensitivity.name in kept
        sensitivity.region = region_of.get(sensitivity.name, "")
    report.regions = [
        {
            "label": c.label,
            "ops": len(c.members),
            "macs": c.macs,
            "kept_float": c.chosen,
            "alone_float": None if c.alone_float is None else c.alone_float.as_dict(),
        }
        for c in candidates
    ]
    report.final = run(model)
    report.keep_float = kept
    report.int8_mac_share = 1 - sum(op.macs for op in ops if op.name in kept) / total
    report.evaluations = counter[0]
    report.notes = list(selection.notes)
    return model, report
