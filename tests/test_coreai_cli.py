"""Core AI through the commands: shvit-convert and shvit-check on ``.aimodel`` assets (fp16, fp32 and
int8-weights, each checked in coreai-core's Linux runtime), refusals in one line.

The function-level tests (S1 parity, metadata, graph size) are in test_coreai.py; here the target
goes through the registry-driven pipeline like every other, on the tiny trained model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_common_export_record, run_cli

from convert.cli.check import check_command
from convert.cli.convert import convert_command
from convert.coreai.inspect import facts

PRECISIONS = ("fp16", "fp32", "int8-weights")


def _convert(tiny: Any, out: Path, *extra: object):
    return run_cli(
        convert_command,
        "--variant",
        "auto",
        "--weights",
        tiny.checkpoint,
        "--input-size",
        tiny.input_size,
        "--labels",
        tiny.labels_file,
        "--target",
        "coreai",
        "--out",
        out,
        *extra,
    )


@pytest.fixture(scope="module")
def exported(tiny: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("coreai-cli")
    made = {}
    for precision in PRECISIONS:
        run = _convert(tiny, out, "--precision", precision, "--images", tiny.images_dir)
        assert run.code == 0, run.stderr
        made[precision] = Path(run.stdout.strip())
    return made


@pytest.mark.parametrize("precision", PRECISIONS)
def test_shvit_convert_writes_a_checked_aimodel(exported: dict[str, Path], tiny: Any, precision: str) -> None:
    path = exported[precision]
    assert path.name == f"shvit_custom_96px_8cls_{precision.replace('-', '_')}.aimodel" and path.is_dir()
    sidecar = json.loads(Path(f"{path}.json").read_text())
    assert sidecar["parity"]["passed"] and "Core AI Linux reference runtime" in sidecar["parity"]["runtime"]
    assert sidecar["config"]["target"] == "coreai" and sidecar["export"]["minimum_os"].startswith("27")
    assert_common_export_record(sidecar, classes=len(tiny.class_names))
    read = facts(path)
    assert read["labels"] == tiny.class_names and read["metadata"]["precision"] == precision == read["precision"]
    assert read["metadata"]["weights_sha256"] == sidecar["weights"]["sha256"]
    compression = sidecar["export"].get("weight_compression")
    if precision == "int8-weights":
        assert compression["weights"] == "int8" and compression["granularity"] == "per-channel"
        assert compression["activations"] == "fp16" and compression["tool"] == "coreai-opt 0.4.0"
        assert compression["compressed_weights"] == read["decompression_ops"] > 0
        assert read["metadata"]["weight_compression"] == compression["description"]
        assert read["size_bytes"] < 0.65 * facts(exported["fp16"])["size_bytes"]  # measured 0.586: small weights stay fp16
    else:
        assert compression is None and "weight_compression" not in read["metadata"]


def test_shvit_check_runs_an_aimodel_in_the_core_ai_runtime(exported: dict[str, Path], tiny: Any) -> None:
    run = run_cli(
        check_command,
        *(exported[p] for p in PRECISIONS),
        "--variant",
        "auto",
        "--weights",
        tiny.checkpoint,
        "--images",
        tiny.images_dir,
        "--count",
        8,
    )
    assert run.code == 0, run.stderr
    assert (
        run.stdout.count("PASS") == 3
        and "shvit_custom_96px_8cls_fp16.aimodel" in run.stdout
        and "shvit_custom_96px_8cls_int8_weights.aimodel" in run.stdout
    )


@pytest.mark.parametrize(
    ("extra", "text", "code"),
    [
        (
            ("--precision", "int8"),
            "--precision: int8 is not available for coreai: int8 activations (W8A8) are not offered for Core AI: "
            "choose int8-weights or int4-weights (weights-only, activations fp16), fp16 or fp32",
            2,
        ),
        (("--precision", "int2-weights"), "Invalid value for '--precision': 'int2-weights' is not one of", 2),
        (("--min-ios", "17"), "--min-ios: does not apply to the coreai target", 1),
    ],
)
def test_what_core_ai_cannot_do_is_one_line_and_writes_nothing(
    tiny: Any, tmp_path: Path, extra: tuple[str, ...], text: str, code: int
) -> None:
    run = _convert(tiny, tmp_path / "out", *extra)
    lines = run.stderr.strip().splitlines()
    assert run.code == code and len(lines) == 1 and text in lines[0] and "Traceback" not in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()
