"""Parity figures and the tolerances they are judged by: one compare helper for every runtime.

``max_rel`` is max |Δ| divided by the reference's logit scale (its largest |logit|); cosine is the
mean per-image cosine similarity. Each target declares its tolerances per precision as named
constants in its own package (``convert/<target>/target.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    min_cosine: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"max |Δ| {self.max_abs:.3g} ({self.max_rel:.2g} of scale {self.scale:.3g}), mean |Δ| {self.mean_abs:.3g}, "
            f"cosine {self.cosine:.6f}, PSNR {self.psnr_db:.1f} dB, top-1 {self.top1:.1%}, top-5 {self.top5:.1%} "
            f"over {self.images} images"
        )


@dataclass(frozen=True)
class Tolerance:
    max_rel: float | None = None
    cosine: float | None = None
    top1: float | None = None

    def checklist(self, report: ParityReport) -> list[tuple[str, bool, str]]:
        """Rows ``(name, passed, detail)`` for every figure this tolerance constrains."""
        rows = []
        if self.max_rel is not None:
            rows.append(("max |Δ| / logit scale", report.max_rel <= self.max_rel, f"{report.max_rel:.2e} ≤ {self.max_rel:.0e}"))
        if self.cosine is not None:
            rows.append(("cosine", report.cosine >= self.cosine, f"{report.cosine:.6f} ≥ {self.cosine}"))
        if self.top1 is not None:
            rows.append(("top-1 agreement", report.top1 >= self.top1, f"{report.top1:.1%} ≥ {self.top1:.0%}"))
        return rows

    def passes(self, report: ParityReport) -> bool:
        return all(ok for _, ok, _ in self.checklist(report))

    def format_checklist(self, report: ParityReport) -> list[str]:
        lines = [f"  {'✓' if ok else '✗'} {name}: {detail}" for name, ok, detail in self.checklist(report)]
        lines.append(f"  · {report.summary()}")
        return lines


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
    cosines = np.where(norms > 0, dot / np.maximum(norms, 1e-30), 0.0)
    mse = float(np.mean(diff**2))
    peak = float(ref.max() - ref.min()) or 1.0
    psnr = float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)
    k = min(5, ref.shape[1])
    top_ref, top_cand = np.argsort(-ref, 1)[:, :k], np.argsort(-cand, 1)[:, :k]
    top5 = np.mean([len(set(a) & set(b)) / k for a, b in zip(top_ref, top_cand)])
    return ParityReport(
        images=int(ref.shape[0]),
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        scale=scale,
        max_rel=float(diff.max()) / scale,
        cosine=float(np.mean(cosines)),
        psnr_db=psnr,
        top1=float(np.mean(top_ref[:, 0] == top_cand[:, 0])),
        top5=float(top5),
        min_cosine=float(np.min(cosines)),
    )
