"""Typed errors of the export pipeline, under the one root :class:`shvit.errors.SHViTError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shvit.errors import SHViTError

if TYPE_CHECKING:
    from convert.parity import ParityReport, Tolerance


class ConvertError(SHViTError):
    """An export that cannot be done as asked (bad option, missing tool, failed conversion)."""


class ArgumentError(ConvertError):
    """An argument whose value cannot work; ``argument`` names it (``precision``, ``calib``, ...)."""


class UsageError(ArgumentError):
    """Arguments out of range or not fitting together, whatever the files: a command exits 2 for these, as for a bad flag."""


class OutputError(ConvertError):
    """The output folder cannot receive the artifact (a file, read-only, full, or already holding one)."""


class MissingPackage(ConvertError):
    """A target's toolchain is not installed; the message says what to install."""


class RuntimeCrash(ConvertError):
    """A runtime died (native abort, segfault) while running an artifact in its subprocess."""


class ToleranceError(SHViTError):
    """One or more parity figures outside their tolerance; lists every failure, not just the first.

    ``result`` is the export's result (artifact written and marked failed in its sidecar) when the
    error comes from :func:`convert.export` with ``strict=True``.
    """

    def __init__(self, artifact: str, failures: list[str], *, result: Any = None) -> None:
        self.artifact = artifact
        self.failures = failures
        self.result = result
        super().__init__(f"{artifact}: parity outside tolerance: " + "; ".join(failures))

    @classmethod
    def check(cls, artifact: str, report: ParityReport, tolerance: Tolerance, *, result: Any = None) -> None:
        """Raise one error listing every failed figure of ``report``, if any."""
        failures = [f"{name} {detail} ✗" for name, ok, detail in tolerance.checklist(report) if not ok]
        if failures:
            raise cls(artifact, failures, result=result)
