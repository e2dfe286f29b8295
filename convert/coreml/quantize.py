"""8-bit Core ML packages: weight-only (``int8-weights``) and weights + activations (``int8``, W8A8).

Both use coremltools' own compression passes. W8A8 needs per-tensor activation ranges, which
coremltools measures only through ``MLModel.predict`` (macOS). Here the reference MIL executor
measures them instead, on the float package about to be quantised, and feeds them to the same
passes coremltools' ``linear_quantize_activations`` runs. Two deliberate differences from its
collector: ranges are a true running min/max over all images (coremltools 9.0 keeps only the last
image's), and model outputs get ranges too (the pass needs one for every tensor it wraps).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from convert.coreml.ctimport import import_coremltools

WEIGHT_THRESHOLD = 2048
"""Weights with fewer elements stay fp16 (coremltools' default): biases, SE gates, tiny kernels."""

W8A8_SPEC_VERSION = 8  # iOS 17: the first with quantize/dequantize activation ops

ActivationStats = dict[str, dict[str, float]]

FLOAT_WEIGHT_PREFIXES: tuple[str, ...] = ("model_patch_embed_", "model_head_")
"""Weights kept in float: the stem (it sees raw pixels) and the classifier head, the layers most
sensitive to weight rounding (about 5% of SHViT-S3's weights, 7% of S1's). Names follow the attribute
paths of :class:`convert.coreml.graph.CoreMLClassifierGraph`, as coremltools names constants."""


def quantize_weights(mlmodel: Any) -> Any:
    """Linear symmetric per-channel int8 weights (``constexpr`` dequantised at load): about half the fp16 size."""
    ct = import_coremltools()
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig

    keep = {name: None for name in const_names(mlmodel.get_spec()) if name.startswith(FLOAT_WEIGHT_PREFIXES)}
    config = OptimizationConfig(
        global_config=OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=WEIGHT_THRESHOLD
        ),
        op_name_configs=keep,
    )
    return ct.optimize.coreml.linear_quantize_weights(mlmodel, config)


def const_names(spec: Any) -> list[str]:
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    return [op.outputs[0].name for op in block.operations if op.type == "const"]


def share_concat_ranges(stats: ActivationStats, groups: Iterable[list[str]]) -> None:
    """Give every input and output of a concat (transitively) one range, so the concat needs no requantising."""
    merged: list[set[str]] = []
    for group in groups:
        names = set(group)
        touching = [m for m in merged if m & names]
        for m in touching:
            names |= m
            merged.remove(m)
        merged.append(names)
    for names in merged:
        present = [stats[n] for n in names if n in stats]
        if not present:
            continue
        low, high = min(s["rmin"] for s in present), max(s["rmax"] for s in present)
        for n in names:
            if n in stats:
                stats[n] = {"rmin": low, "rmax": high}


def quantize_activations(mlmodel: Any, stats: ActivationStats, *, keep_float: Sequence[str] = ()) -> Any:
    """Insert int8 quantize/dequantize pairs around convs, linears and adds (coremltools' passes), iOS 17+.

    ``keep_float``: MIL op names left fp16 (coremltools' per-op config, read by both passes).
    """
    import_coremltools()
    from coremltools.converters.mil.frontend.milproto import load as milproto_to_pymil
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig

    # The classifier head (the one linear) stays fp16: its output is also the package's ``logits``
    # output, which the suffix pass cannot rewrite, and a float head costs nothing measurable.
    config = OptimizationConfig(
        global_config=OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"),
        op_type_configs={"linear": None},
        op_name_configs={name: None for name in keep_float},
    )
    passes = []
    for name in ("compression::insert_prefix_quantize_dequantize_pair", "compression::insert_suffix_quantize_dequantize_pair"):
        graph_pass = PASS_REGISTRY[name]
        graph_pass.set_options([PassOption("config", config), PassOption("activation_stats", stats)])
        passes.append(graph_pass)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    return model_utils._apply_graph_pass(
        mlmodel, passes, spec_version=W8A8_SPEC_VERSION, pymil_load_func=milproto_to_pymil.load, skip_model_load=True
    )
