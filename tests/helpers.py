"""Shared test helpers: image-dependent weights (from :mod:`calib.proxy`) and the one compare assertion everyone uses."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calib.proxy import RESIDUAL_BRANCH_BNS, randomize_bn, recompute_bn_stats, trained_like
from convert.cli.common import run_command


def assert_close(actual: np.ndarray, expected: np.ndarray, *, rel: float, what: str = "logits") -> None:
    """max |Δ| relative to the expected values' scale; the message shows the figures, not just False."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.abs(expected).max()) or 1.0
    err = float(np.abs(actual - expected).max())
    assert err <= rel * scale, f"{what}: max |Δ| {err:.3g} = {err / scale:.3g} of scale {scale:.3g} > {rel:g}"


def export_source(
    source,
    *,
    target: str,
    out_dir,
    precision: str | None = None,
    images=None,
    calib=None,
    calib_count: int = 32,
    force: bool = False,
    **target_options,
):
    """The export pipeline on an already loaded :class:`convert.source.ModelSource` (shared by a test's several exports)."""
    from pathlib import Path

    from convert.api.pipeline import run_export
    from convert.config import ExportOptions, OutputSpec, plan
    from convert.io.scratch import Scratch

    options = ExportOptions(
        target=target, precision=precision, calib=Path(calib) if calib else None, calib_count=calib_count, target_options=target_options
    )
    with Scratch.open() as scratch:
        return run_export(
            plan(options, OutputSpec(out_dir=Path(out_dir), force=force)), source, images=Path(images) if images else None, scratch=scratch
        )


def run_in_runtime(artifact, pixels):
    """``run_artifact`` with a scratch folder of its own."""
    from convert.io.scratch import Scratch
    from convert.validate.runner import run_artifact

    with Scratch.open() as scratch:
        return run_artifact(artifact, pixels, scratch=scratch)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None = None
    html: str | None = None

    def artifact(self, name: str) -> dict[str, Any]:
        assert self.report is not None
        return next(a for a in self.report["artifacts"] if a["name"] == name)

    def row(self, name: str) -> str:
        return next(line for line in self.stdout.splitlines() if line.startswith(name + " "))


def run_cli(command: Any, *args: object, json_path: Path | None = None, html_path: Path | None = None) -> Run:
    """Run a click command in-process the way the console script does, capturing both streams."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_command(command, [str(a) for a in args])
    report = json.loads(json_path.read_text()) if json_path is not None and json_path.exists() else None
    page = html_path.read_text() if html_path is not None and html_path.exists() else None
    return Run(code, out.getvalue(), err.getvalue(), report, page)


def tiny_convert_args(tiny: Any, target: str, out: Path) -> list[object]:
    """``shvit-convert`` arguments exporting the tiny model at its own size: the export conftest's
    ``tiny_previous_exports`` makes once per run, so a test can start from it and re-run the command."""
    model = ["--variant", "auto", "--weights", tiny.checkpoint, "--input-size", tiny.input_size, "--labels", tiny.labels_file]
    return [*model, "--target", target, "--out", out]


@contextlib.contextmanager
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Module-scoped fixtures run before the autouse (function-scoped) cache isolation: isolate here too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHVIT_CACHE_DIR", str(tmp_path_factory.mktemp("check-cache")))
        yield


__all__ = [
    "RESIDUAL_BRANCH_BNS",
    "Run",
    "assert_close",
    "export_source",
    "private_cache",
    "randomize_bn",
    "recompute_bn_stats",
    "run_cli",
    "run_in_runtime",
    "trained_like",
]


def tiny_traced_classifier() -> tuple[Any, Any]:
    """A traced 3-class image classifier on 32 px inputs (and its example input): converts in seconds, for
    tests that need some Core ML package whose interface, not its numbers, matters."""
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)
    ).eval()
    example = torch.zeros(1, 3, 32, 32)
    return torch.jit.trace(net, example), example


def assert_common_export_record(sidecar: dict[str, Any], *, classes: int) -> None:
    """The sidecar's ``export`` section has the keys every target shares, so readers need not know the format."""
    export = sidecar["export"]
    assert {"input", "output", "contents", "int8"} <= export.keys(), sorted(export)
    assert export["input"]["name"] and export["output"]["name"]
    assert export["output"]["classes"] == classes
    assert (export["int8"] is not None) == (sidecar["config"]["precision"] == "int8")
