"""Parity against the PyTorch reference: metrics and tolerances (compare), runtimes in subprocesses (runner)."""
from convert.validate.compare import ParityReport, Tolerance, check, compare, tolerance_for
from convert.validate.runner import run_artifact

__all__ = ["ParityReport", "Tolerance", "check", "compare", "run_artifact", "tolerance_for"]
