"""One compare helper for every runtime: logits of an artifact against PyTorch's, and the tolerances.

Tolerances are per target and precision, defined once here. ``max_rel`` is max |Δ| divided by the
reference's logit scale (its largest |logit|); cosine is the mean per-image cosine similarity.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from convert.errors import ToleranceError


@dataclass(frozen=True)
class Tolerance:
    max_rel: float | None = None
    cosine: float | None = None
    top1: float | None = None


ONNX_FP32 = Tolerance(max_rel=1e-4)
COREML_FP32 = Tolerance(max_rel=1e-3)
COREML_FP16 = Tolerance(cosine=0.9995)
COREML_INT8_WEIGHTS = Tolerance(cosine=0.999)
COREML_INT8 = Tolerance(cosine=0.99, top1=0.95)
TFLITE_FP32 = Tolerance(max_rel=1e-4)
TFLITE_FP16 = Tolerance(cosine=0.9995)
TFLITE_INT8_WEIGHTS = Tolerance(cosine=0.995)
TFLITE_INT8 = Tolerance(cosine=0.98, top1=0.90)

TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("onnx", "fp32"): ONNX_FP32,
    ("coreml", "fp32"): COREML_FP32,
    ("coreml", "fp16"): COREML_FP16,
    ("coreml", "int8-weights"): COREML_INT8_WEIGHTS,
    ("coreml", "int8"): COREML_INT8,
    ("tflite", "fp32"): TFLITE_FP32,
    ("tflite", "fp16"): TFLITE_FP16,
    ("tflite", "int8-weights"): TFLITE_INT8_WEIGHTS,
    ("tflite", "int8"): TFLITE_INT8,
}


def tolerance_for(target: str, precision: str) -> Tolerance:
    return TOLERANCES[(target, precision)]


@dataclass(frozen=True)
class ParityReport:
    """Figures a user can trust: errors, similarity and ranking agreement over N images."""

    images: int
    max_abs: float
    mean_abs: float
    scale: float
    max_rel: float
    cosine: float
    psnr_db: float
    top1: float
    top5: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"max |Δ| {self.max_abs:.3g} ({self.max_rel:.2g} of scale {self.scale:.3g}), mean |Δ| {self.mean_abs:.3g}, "
            f"cosine {self.cosine:.6f}, PSNR {self.psnr_db:.1f} dB, top-1 {self.top1:.1%}, top-5 {self.top5:.1%} "
            f"over {self.images} images"
        )


def compare(reference: np.ndarray, candidate: np.ndarray) -> ParityReport:
    """Metrics of ``candidate`` logits against ``reference`` logits, both (N, classes)."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"output shape {cand.shape} differs from the reference's {ref.shape}")
    diff = np.abs(ref - cand)
    scale = float(np.abs(ref).max()) or 1.0
    dot = (ref * cand).sum(1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = float(np.mean(np.where(norms > 0, dot / np.maximum(norms, 1e-30), 0.0)))
    mse = float(np.mean(diff**2))
    peak = float(ref.max() - ref.min()) or 1.0
    psnr = float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)
    k = min(5, ref.shape[1])
    top_ref, top_cand = np.argsort(-ref, 1)[:, :k], np.argsort(-cand, 1)[:, :k]
    top5 = np.mean([len(set(a) & set(b)) / k for a, b in zip(top_ref, top_cand)])
    return ParityReport(
        images=int(ref.shape[0]), max_abs=float(diff.max()), mean_abs=float(diff.mean()), scale=scale,
        max_rel=float(diff.max()) / scale, cosine=cosine, psnr_db=psnr,
        top1=float(np.mean(top_ref[:, 0] == top_cand[:, 0])), top5=float(top5),
    )


def check(report: ParityReport, tolerance: Tolerance) -> list[tuple[str, bool, str]]:
    """Checklist rows ``(name, passed, detail)`` for every figure the tolerance constrains."""
    rows = []
    if tolerance.max_rel is not None:
        rows.append(("max |Δ| / logit scale", report.max_rel <= tolerance.max_rel, f"{report.max_rel:.2e} ≤ {tolerance.max_rel:.0e}"))
    if tolerance.cosine is not None:
        rows.append(("cosine", report.cosine >= tolerance.cosine, f"{report.cosine:.6f} ≥ {tolerance.cosine}"))
    if tolerance.top1 is not None:
        rows.append(("top-1 agreement", report.top1 >= tolerance.top1, f"{report.top1:.1%} ≥ {tolerance.top1:.0%}"))
    return rows


def enforce(artifact: str, report: ParityReport, tolerance: Tolerance) -> None:
    """Raise one ToleranceError listing every failed figure."""
    failures = [f"{name} {detail} ✗" for name, ok, detail in check(report, tolerance) if not ok]
    if failures:
        raise ToleranceError(artifact, failures)


def format_checklist(report: ParityReport, tolerance: Tolerance) -> list[str]:
    lines = [f"  {'✓' if ok else '✗'} {name}: {detail}" for name, ok, detail in check(report, tolerance)]
    lines.append(f"  · {report.summary()}")
    return lines
