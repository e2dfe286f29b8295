"""TFLite target: four precisions of S1 in LiteRT, the lean graph, offline conversion, isolation.

Expensive conversions happen once per module: S1 in all four precisions from a single onnx2tf run
(BN statistics recomputed on images, so its outputs depend on the image), and the tiny trained
model through the pipeline in full int8 (where top-1 agreement means something).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_common_export_record, recompute_bn_stats, run_in_runtime

import calib
import convert
import shvit
from convert.api.pipeline import ExportResult
from convert.errors import RuntimeCrash
from convert.int8.engine import PLAIN_FULL_INT8
from convert.parity import compare
from convert.tflite import graphinfo, metadata, onnx2tf_runner
from convert.tflite.export import export_tflite
from convert.tflite.graph import SHSATokens, tflite_friendly
from convert.tflite.target import TFLITE_FP16, TFLITE_FP32, TFLITE_INT8, TFLITE_INT8_WEIGHTS, labels_file_name

S1_PRECISIONS = ("fp32", "fp16", "int8-weights", "int8")
CHECK_IMAGES = 16
CALIB_IMAGES = 16
S1_INT8_FLOOR = 0.8
XNNPACK_OPS = frozenset(
    {
        "ADD",
        "SUB",
        "MUL",
        "MEAN",
        "RSQRT",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "BATCH_MATMUL",
        "SOFTMAX",
        "RELU",
        "LOGISTIC",
        "CONCATENATION",
        "STRIDED_SLICE",
        "RESHAPE",
        "PAD",
        "QUANTIZE",
        "DEQUANTIZE",
    }
)
"""Every op type the exported graphs may hold: all delegated by XNNPACK in float32."""


# ------------------------------------------------------------------- fixtures


@dataclass
class S1Models:
    paths: dict[str, Path]
    reference: np.ndarray
    pixels: np.ndarray
    deploy: torch.nn.Module


@pytest.fixture(scope="module")
def s1(tmp_path_factory: pytest.TempPathFactory) -> S1Models:
    """S1 with image-dependent BN statistics, exported once in every precision."""
    model = recompute_bn_stats(shvit.create_model("s1"), size=224)
    deploy = shvit.reparameterize(model)
    out = tmp_path_factory.mktemp("s1-tflite")
    paths = {p: out / f"s1_{p}.tflite" for p in S1_PRECISIONS}
    export_tflite(
        shvit.PixelInput(deploy),
        paths,
        input_size=224,
        labels=[f"class_{i}" for i in range(1000)],
        name="SHViT-S1",
        calib_pixels=calib.synthetic_images(CALIB_IMAGES, 224, seed=1),
        int8=PLAIN_FULL_INT8,  # the full-integer graph: every op int8, float islands only where XNNPACK needs them
        progress=False,
        log=lambda _: None,
    )
    pixels = calib.synthetic_images(CHECK_IMAGES, 224, seed=7)
    with torch.no_grad():
        reference = model(torch.from_numpy(calib.normalize(pixels))).numpy()
    return S1Models(paths, reference, pixels, deploy)


@dataclass
class TinyInt8:
    outcome: ExportResult
    out_dir: Path
    network_attempts: list[str]
    cwd_after: list[str]


@pytest.fixture(scope="module")
def tiny_int8(tiny, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyInt8]:
    """The tiny trained model through the pipeline in full int8, with the network and the cwd watched."""
    cwd = tmp_path_factory.mktemp("cwd")
    attempts: list[str] = []

    def refuse(what: str):
        def blocked(*args, **kwargs):
            attempts.append(f"{what} {args[1:2] or args[:1]}")
            raise OSError("network access during a TFLite export")

        return blocked

    out_dir = tmp_path_factory.mktemp("tiny-int8") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setattr(socket.socket, "connect", refuse("connect"))
        mp.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
        mp.setattr(socket, "create_connection", refuse("create_connection"))
        outcome = convert.export(
            tiny.checkpoint,
            target="tflite",
            precision="int8",
            out_dir=out_dir,
            input_size=tiny.input_size,
            labels=tiny.labels_file,
            calib=tiny.images_dir,
            images=tiny.images_dir,
        )
        yield TinyInt8(outcome, out_dir, attempts, sorted(os.listdir(cwd)))


def _parity(path: Path, s1: S1Models):
    logits, runtime = run_in_runtime(path, s1.pixels)
    assert runtime.startswith("LiteRT")
    return compare(s1.reference, logits)


# --------------------------------------------------------- the graph rewrite


def test_tflite_friendly_graph_is_the_same_function() -> None:
    model = recompute_bn_stats(shvit.create_model("s1"), size=224)
    pixel_model = shvit.PixelInput(shvit.reparameterize(model))
    rewritten = tflite_friendly(pixel_model)
    assert sum(isinstance(m, SHSATokens) for m in rewritten.modules()) == sum(model.config.depth[1:])
    x = torch.from_numpy(calib.synthetic_images(4, 224, seed=3).transpose(0, 3, 1, 2).astype(np.float32))
    with torch.no_grad():
        expected, actual = pixel_model(x), rewritten(x)
    err = float((expected - actual).abs().max() / expected.abs().max())
    assert err < 1e-5, f"rewritten graph differs by {err:.2g} of the logit scale"


# ------------------------------------------------------- S1, four precisions


@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", TFLITE_FP32), ("fp16", TFLITE_FP16), ("int8-weights", TFLITE_INT8_WEIGHTS)])
def test_s1_float_and_weight_quantised_parity(s1: S1Models, precision: str, tolerance) -> None:
    report = _parity(s1.paths[precision], s1)
    spread = np.std(s1.reference, axis=0).mean() / np.std(s1.reference)
    assert spread > 0.2, "the reference model's logits hardly depend on the image: parity would prove nothing"
    if tolerance.max_rel is not None:
        assert report.max_rel <= tolerance.max_rel, report.summary()
    if tolerance.cosine is not None:
        assert report.cosine >= tolerance.cosine, report.summary()


def test_s1_full_int8_loads_and_runs(s1: S1Models) -> None:
    """The int8 graph of a full-size variant loads and runs in LiteRT (the old form aborted there).

    Its accuracy is held to the int8 tolerance on the tiny trained model below: on random weights,
    even with recomputed BN statistics, int8 rounding noise is large next to the small part of the
    activations that depends on the image (cosine about 0.92 here), so only a floor that catches a
    broken graph (wrong scales, swapped channels: cosine near 0) is asserted.
    """
    report = _parity(s1.paths["int8"], s1)
    assert report.cosine >= S1_INT8_FLOOR, report.summary()
    inp, out = graphinfo.io_tensors(s1.paths["int8"])
    assert (inp.dtype, inp.shape, inp.scale, inp.zero_point) == ("uint8", (1, 224, 224, 3), 1.0, 0)
    assert (out.dtype, out.shape) == ("float32", (1, 1000))


def test_s1_precisions_differ_in_what_they_store(s1: S1Models) -> None:
    sizes = {p: s1.paths[p].stat().st_size for p in S1_PRECISIONS}
    assert sizes["fp16"] < 0.6 * sizes["fp32"]
    assert sizes["int8-weights"] < 0.35 * sizes["fp32"] and sizes["int8"] < 0.35 * sizes["fp32"]
    for precision in ("fp32", "fp16", "int8-weights"):
        inp, out = graphinfo.io_tensors(s1.paths[precision])
        assert (inp.name, inp.dtype, inp.shape) == ("pixels", "float32", (1, 224, 224, 3))
        assert (out.name, out.dtype, out.shape) == ("logits", "float32", (1, 1000))


def test_s1_graph_is_lean(s1: S1Models) -> None:
    ops = graphinfo.op_counts(s1.paths["fp32"])
    attention_blocks = sum(isinstance(m, shvit.layers.SHSADeploy) for m in s1.deploy.modules())
    depthwise = sum(isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1 for m in s1.deploy.modules())
    assert "TRANSPOSE" not in ops and "SPLIT_V" not in ops and "SPLIT" not in ops, ops
    assert ops["RESHAPE"] == attention_blocks, ops  # keys and values into tokens: nothing else reshapes
    assert ops["DEPTHWISE_CONV_2D"] == depthwise, ops  # none lowered to a grouped CONV_2D
    assert ops["BATCH_MATMUL"] == 2 * attention_blocks and ops["SOFTMAX"] == attention_blocks
    assert set(ops) <= XNNPACK_OPS, sorted(set(ops) - XNNPACK_OPS)


def test_s1_xnnpack_takes_every_graph_whole(s1: S1Models) -> None:
    partitions = {p: graphinfo.delegation(s1.paths[p]).partitions for p in S1_PRECISIONS}
    assert partitions["fp32"] == partitions["fp16"] == partitions["int8-weights"] == 1, partitions
    assert partitions["int8"] <= 3, partitions
    int8_ops = graphinfo.op_counts(s1.paths["int8"])
    assert int8_ops["QUANTIZE"] >= 1 and int8_ops["DEQUANTIZE"] >= 1  # float islands: rsqrt, softmax, relu


def test_s1_int8_weights_quantises_pointwise_weights_only(s1: S1Models) -> None:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(s1.paths["int8-weights"].read_bytes(), 0)
    names, graph = graphinfo.op_name_table(model), model.Subgraphs(0)
    kinds: dict[str, set[str]] = {"1x1": set(), "spatial": set(), "classifier": set()}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name = names[op.OpcodeIndex()]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        weights = graph.Tensors(op.Inputs(1))
        shape = weights.ShapeAsNumpy()
        kind = "classifier" if name == "FULLY_CONNECTED" else "1x1" if shape[1] * shape[2] == 1 else "spatial"
        kinds[kind].add("int8" if weights.Type() == schema.TensorType.INT8 else "float32")
    assert kinds == {"1x1": {"int8"}, "spatial": {"float32"}, "classifier": {"int8"}}


def test_metadata_is_embedded_in_the_standard_format(s1: S1Models) -> None:
    found = metadata.read(s1.paths["int8"])
    standard, record = found["standard"], found["json"]
    assert standard["name"] == "SHViT-S1" and standard["min_parser_version"] == metadata.MIN_PARSER_VERSION
    assert standard["input"]["color_space"] == 1 and standard["input"]["content"] == 2  # RGB image
    assert (standard["input"]["mean"], standard["input"]["std"]) == ([0.0], [1.0])  # normalisation is in the graph
    assert (standard["input"]["min"], standard["input"]["max"]) == ([0.0], [255.0])
    labels_name = "s1_int8.labels.txt"
    assert standard["output"]["associated_files"] == [{"name": labels_name, "type": 2}]  # TENSOR_AXIS_LABELS
    assert found["files"][labels_name].splitlines() == [f"class_{i}" for i in range(1000)]
    assert record["schema"] == metadata.JSON_SCHEMA and record["num_classes"] == 1000
    assert record["input"]["dtype"] == "uint8" and record["input"]["scale"] == 1.0 and record["input"]["layout"] == "NHWC"


# --------------------------------------------- tiny trained model, full int8


def test_tiny_full_int8_keeps_predictions(tiny, tiny_int8: TinyInt8) -> None:
    report = tiny_int8.outcome.parity
    assert tiny_int8.outcome.passed
    assert report.cosine >= TFLITE_INT8.cosine and report.top1 >= TFLITE_INT8.top1, report.summary()
    images = calib.load_folder(tiny.images_dir, size=tiny.input_size, progress=False)
    logits, _ = run_in_runtime(tiny_int8.outcome.path, images.pixels)
    predicted = [tiny.class_names[i] for i in logits.argmax(1)]
    truth = [images.class_names[i] for i in images.labels]
    accuracy = float(np.mean([p == t for p, t in zip(predicted, truth)]))
    assert accuracy >= tiny.accuracy - 0.05, f"int8 accuracy {accuracy:.1%} vs PyTorch {tiny.accuracy:.1%}"


def test_tiny_int8_files_and_sidecar(tiny, tiny_int8: TinyInt8) -> None:
    out = tiny_int8.out_dir
    artifact = tiny_int8.outcome.path
    assert sorted(p.name for p in out.iterdir()) == sorted([artifact.name, artifact.name + ".json", labels_file_name(artifact.stem)])
    assert (out / labels_file_name(artifact.stem)).read_text().splitlines() == tiny.class_names
    record = json.loads((out / (artifact.name + ".json")).read_text())
    export = record["export"]
    assert_common_export_record(record, classes=len(tiny.class_names))
    assert export["int8"]["outcome"] and export["contents"]
    assert export["xnnpack_partitions"] <= 3 and export["calibration_images"] > 0
    assert export["input"] == {
        "name": "pixels",
        "shape": [1, 96, 96, 3],
        "dtype": "uint8",
        "scale": 1.0,
        "zero_point": 0,
        "layout": "NHWC",
        "range": "RGB 0-255",
        "normalization": "baked into the model (ImageNet mean/std)",
    }
    assert record["parity"]["passed"] and record["parity"]["top1"] >= TFLITE_INT8.top1
    assert metadata.read(artifact)["files"][labels_file_name(artifact.stem)].splitlines() == tiny.class_names


def test_conversion_stays_offline_and_out_of_the_cwd(tiny_int8: TinyInt8) -> None:
    assert tiny_int8.network_attempts == []
    assert tiny_int8.cwd_after == []


# ----------------------------------------------------------- offline guard


def test_the_conversion_childs_guard_refuses_the_network(tmp_path: Path) -> None:
    """onnx2tf 2.x downloads nothing, but anything in the child that tries is refused and recorded."""
    script = (
        "import requests\n"
        "from convert.io.child import block_network\n"
        "attempts = []\nblock_network(attempts)\n"
        "try:\n    requests.get('https://github.com', timeout=5)\nexcept requests.exceptions.ConnectionError:\n    pass\n"
        "print('attempts', len(attempts))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "attempts 1" in proc.stdout


def test_onnxsim_is_found_without_an_activated_environment() -> None:
    path = onnx2tf_runner.tool_path({"PATH": "/usr/bin:/bin"})
    found = shutil.which("onnxsim", path=path)
    assert found is not None and Path(found).parent == Path(sys.executable).parent


@pytest.mark.slow
def test_cli_by_absolute_path_from_a_non_activated_venv(tiny, tmp_path: Path) -> None:
    """pipx/IDE style: the console script by absolute path, the venv's bin not on PATH."""
    script = Path(sys.executable).parent / "shvit-convert"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = "/usr/bin:/bin"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run(
        [
            str(script),
            "--variant",
            "auto",
            "--weights",
            str(tiny.checkpoint),
            "--input-size",
            str(tiny.input_size),
            "--labels",
            str(tiny.labels_file),
            "--target",
            "tflite",
            "--precision",
            "fp16",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "✓ cosine" in proc.stderr and "Traceback" not in proc.stderr
    artifact = tmp_path / "out" / "shvit_custom_96px_8cls_fp16.tflite"
    assert artifact.exists() and list(cwd.iterdir()) == []
    onnxsim = json.loads(artifact.with_name(artifact.name + ".json").read_text())["export"]["toolchain"]["onnxsim"]
    assert Path(onnxsim).parent == script.parent  # onnx2tf found (and ran) the environment's onnxsim


# ------------------------------------------------------- subprocess isolation


def test_broken_model_is_a_clean_runtime_crash(tiny_int8: TinyInt8, tmp_path: Path) -> None:
    data = tiny_int8.outcome.path.read_bytes()
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(data[: len(data) // 3])
    with pytest.raises(RuntimeCrash) as caught:
        run_in_runtime(broken, calib.synthetic_images(2, 96))
    assert "broken.tflite" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(RuntimeCrash):
        graphinfo.delegation(broken)
