"""Neural Engine coverage of a Core ML package from coremltools' compute-plan API (macOS 14.4+ only).

One op that the Neural Engine cannot run splits the model into ANE / GPU / CPU segments, which is
the usual reason an efficient ViT is slower on the phone than the paper says; this reports each
op's preferred device and estimated cost, and the share that stays on the Neural Engine.
"""

from __future__ import annotations

import platform
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convert.coreml.ctimport import import_coremltools
from mobile_demo.errors import DemoError

COMPUTE_UNITS = ("ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY")
DEVICES = ("neural_engine", "gpu", "cpu", "unknown")
TOP_OFF_NE = 10
"""How many of the costliest ops that do not run on the Neural Engine the summary lists."""


@dataclass(frozen=True)
class OpPlacement:
    """One ML Program op: its type, first output name, preferred device and estimated cost share."""

    operator: str
    output: str
    device: str
    cost: float | None


def compute_plan_unavailable_reason() -> str | None:
    """Why :func:`compute_plan_summary` cannot run here, or None when it can."""
    if sys.platform != "darwin":
        return f"Core ML compute plans need macOS 14.4 or later (this is {platform.system() or sys.platform})"
    release = tuple(int(p) for p in (platform.mac_ver()[0] or "0").split(".")[:2] if p.isdigit())
    if release < (14, 4):
        return f"Core ML compute plans need macOS 14.4 or later (this is macOS {platform.mac_ver()[0] or 'unknown'})"
    import_coremltools()
    from coremltools.models import compute_plan

    if compute_plan._MLModelProxy is None:
        return "this coremltools build has no native Core ML bindings (install the macOS wheel)"
    return None


def compute_plan_summary(mlpackage: Path, *, compute_units: str = "ALL") -> dict[str, Any] | None:
    """Per-device op counts and cost shares, the Neural Engine share, and the costliest ops off it.

    None where compute plans are unavailable (see :func:`compute_plan_unavailable_reason`).
    """
    if compute_units not in COMPUTE_UNITS:
        raise DemoError(f"unknown compute units {compute_units!r}: choose one of {', '.join(COMPUTE_UNITS)}")
    if compute_plan_unavailable_reason() is not None:
        return None
    from mobile_demo.coreml_spec import read_coreml

    read_coreml(mlpackage)
    ct = import_coremltools()
    from coremltools.models.compute_plan import MLComputePlan

    with tempfile.TemporaryDirectory(prefix="shvit-plan-") as tmp:
        compiled = ct.models.utils.compile_model(str(mlpackage), str(Path(tmp) / "model.mlmodelc"))
        plan = MLComputePlan.load_from_path(compiled, compute_units=getattr(ct.ComputeUnit, compute_units))
        program = plan.model_structure.program
        if program is None:
            raise DemoError(f"{mlpackage} is not an ML Program: compute plans per op need one (re-export with shvit-convert)")
        placements = [_placement(plan, op) for function in program.functions.values() for op in _operations(function.block)]
    summary = summarize_ops(placements)
    summary["compute_units"] = compute_units
    return summary


def summarize_ops(placements: Iterable[OpPlacement]) -> dict[str, Any]:
    """Aggregate op placements; ``const`` ops carry no work and are left out."""
    ops = [p for p in placements if p.operator != "const"]
    counts = {d: sum(1 for p in ops if p.device == d) for d in DEVICES}
    costs = {d: sum(p.cost or 0.0 for p in ops if p.device == d) for d in DEVICES}
    total_cost = sum(costs.values())
    off_ne = sorted((p for p in ops if p.device != "neural_engine"), key=lambda p: -(p.cost or 0.0))
    return {
        "ops": len(ops),
        "ops_by_device": counts,
        "cost_share_by_device": {d: (costs[d] / total_cost if total_cost else 0.0) for d in DEVICES},
        "neural_engine_op_share": counts["neural_engine"] / len(ops) if ops else 0.0,
        "neural_engine_cost_share": costs["neural_engine"] / total_cost if total_cost else 0.0,
        "costliest_off_neural_engine": [
            {"op": p.operator, "output": p.output, "device": p.device, "cost": p.cost} for p in off_ne[:TOP_OFF_NE]
        ],
    }


def _operations(block: Any) -> Iterable[Any]:
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _operations(inner)


def _placement(plan: Any, op: Any) -> OpPlacement:
    from coremltools.models.compute_device import MLCPUComputeDevice, MLGPUComputeDevice, MLNeuralEngineComputeDevice

    usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
    cost = plan.get_estimated_cost_for_mlprogram_operation(op)
    device = "unknown"
    if usage is not None:
        preferred = usage.preferred_compute_device
        for kind, name in ((MLNeuralEngineComputeDevice, "neural_engine"), (MLGPUComputeDevice, "gpu"), (MLCPUComputeDevice, "cpu")):
            if isinstance(preferred, kind):
                device = name
    output = op.outputs[0].name if op.outputs else ""
    return OpPlacement(op.operator_name, output, device, None if cost is None else float(cost.weight))
