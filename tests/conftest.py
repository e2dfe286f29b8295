"""Fixtures shared by the suite: an isolated cache, no network, the tiny trained model and its shared exports."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tiny_model
from helpers import private_cache, tiny_traced_classifier

import calib
import convert


def _load_triton_before_tensorflow() -> None:
    """With PyTorch's CUDA build, importing triton after TensorFlow segfaults (triton/knobs.py). The toolkit keeps
    TensorFlow in child processes; a few tests run it in-process, so triton (through torch._dynamo, as coremltools
    loads it) comes first, whatever order the tests run in."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        import torch._dynamo  # noqa: F401


_load_triton_before_tensorflow()

HEAVIEST_FIRST = (
    "test_robustness",
    "test_api",
    "test_int8",
    "test_int8_cli",
    "test_first_use",
    "test_interrupts",
    "test_coreml_export",
    "test_tflite_export",
    "test_coreai",
    "test_mobile_demo",
    "test_progress",
    "test_offline_first_run",
    "test_coreai_cli",
    "test_reproducible",
    "test_bench_artifacts",
    "test_process",
    "test_bench",
)
"""Modules of a minute or more each (measured on 2 cores), longest first, except that the second, which the other
worker starts with, needs no tiny model: it runs while the first worker trains it. With ``--dist loadfile
--no-loadscope-reorder`` a worker takes one whole module at a time in collection order: the long ones first leave
the short ones to even out the end, instead of one worker finishing a long module alone while the other idles."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: a module's own order is kept


_LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's ~/.cache; each test session gets its own."""
    if "SHVIT_CACHE_DIR" not in os.environ or not os.environ["SHVIT_CACHE_DIR"].startswith(str(tmp_path_factory.getbasetemp())):
        monkeypatch.setenv("SHVIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "shvit-cache"))


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests may talk to 127.0.0.1 (a served file), never to the internet."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(_LOOPBACK):
            raise OSError(f"test tried to reach the network ({host}); tests must stay offline")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tiny_model.TinyModel:
    """The tiny SHViT trained on generated shapes (trained once, cached in pytest's cache folder if enabled)."""
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("shvit-tiny-model")) if cache is not None else tmp_path_factory.mktemp("shvit-tiny-model")
    return tiny_model.build(root)


def _run_wide_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this run sees (the workers' base folders share a parent)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_exports(tiny: tiny_model.TinyModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ONNX fp32 and calibrated TFLite int8 exports of the tiny model, made once per run: the first worker to
    need them builds them under a lock, the other reads them (tests only read them)."""
    from filelock import FileLock

    root = _run_wide_folder(tmp_path_factory)
    record = root / "tiny-exports.json"
    with FileLock(str(root / "tiny-exports.lock")):
        if record.exists():
            return {name: Path(path) for name, path in json.loads(record.read_text()).items()}
        out = Path(tempfile.mkdtemp(prefix="tiny-exports-", dir=root))
        calib_dir = out / "calib-images"
        pixels, labels, names = calib.make_class_dataset(4, tiny.input_size, seed=7, num_classes=len(tiny.class_names))
        calib.write_dataset(calib_dir, pixels, labels, names)
        made = {"calib": calib_dir}
        with private_cache(tmp_path_factory):
            for name, target, precision in (("onnx", "onnx", "fp32"), ("tflite_int8", "tflite", "int8")):
                made[name] = convert.export(
                    tiny.checkpoint,
                    target=target,
                    out_dir=out,
                    precision=precision,
                    input_size=tiny.input_size,
                    labels=tiny.labels_file,
                    calib=calib_dir if precision == "int8" else None,
                ).path
        record.write_text(json.dumps({name: str(path) for name, path in made.items()}))
        return made


PREVIOUS_TARGETS = ("onnx", "coreml", "tflite", "coreai")


@pytest.fixture(scope="session")
def tiny_previous_exports(tiny: tiny_model.TinyModel, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Path], Path]:
    """``copy(target, out)`` fills ``out`` with what ``shvit-convert`` with ``helpers.tiny_convert_args(tiny, target,
    out)`` leaves there (artifact, sidecar, any extra file) and returns the artifact's path in it: a previous export
    for a test to overwrite or interrupt, without running a whole conversion first. Each target's fp32 export is
    made once per run, when first asked for, in a folder of its own shared by the xdist workers (made under a lock,
    as tiny_exports)."""
    from filelock import FileLock

    root = _run_wide_folder(tmp_path_factory)

    def made(target: str) -> Path:
        assert target in PREVIOUS_TARGETS, target
        record = root / f"tiny-previous-{target}.json"
        with FileLock(str(root / f"tiny-previous-{target}.lock")):
            if record.exists():
                return Path(json.loads(record.read_text())["artifact"])
            folder = Path(tempfile.mkdtemp(prefix=f"tiny-previous-{target}-", dir=root))
            with private_cache(tmp_path_factory):
                result = convert.export(  # the call shvit-convert makes for those options
                    "auto",
                    target=target,
                    weights=str(tiny.checkpoint),
                    out_dir=folder,
                    input_size=tiny.input_size,
                    labels=tiny.labels_file,
                )
            assert result.passed, f"the tiny model's {target} export failed its parity check"  # shvit-convert would exit 1
            record.write_text(json.dumps({"artifact": str(result.path)}))
            return result.path

    def copy(target: str, out: Path) -> Path:
        artifact = made(target)
        shutil.copytree(artifact.parent, out, dirs_exist_ok=True)
        return out / artifact.name

    return copy


@pytest.fixture(scope="session")
def tiny_tflites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """uint8-in/uint8-out classifier ending in a softmax, with labels packed in the file; a float
    classifier with no labels anywhere; and a segmentation-like model (one score map, no classes)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    root = tmp_path_factory.mktemp("tiny-tflite")
    inp = tf.keras.Input((48, 48, 3), batch_size=1)
    feat = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(8, 3, strides=4)(inp))
    logits = tf.keras.layers.Dense(6)(feat)

    def convert(model: tf.keras.Model, *, quantize: bool) -> bytes:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if quantize:
            rng = np.random.default_rng(0)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([rng.uniform(0, 255, (1, 48, 48, 3)).astype(np.float32)] for _ in range(8))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        return converter.convert()

    paths = {
        "quantized": root / "quant" / "tiny_u8.tflite",
        "unlabelled": root / "plain" / "tiny_f32.tflite",
        "segmenter": root / "seg" / "tiny_seg.tflite",
    }
    for path in paths.values():
        path.parent.mkdir()
    paths["quantized"].write_bytes(convert(tf.keras.Model(inp, tf.keras.layers.Softmax()(logits)), quantize=True))
    with zipfile.ZipFile(paths["quantized"], "a") as archive:  # what TFLite Metadata's populator does
        archive.writestr("tiny_labels.txt", "\n".join(f"shape {i}" for i in range(6)) + "\n")
    paths["unlabelled"].write_bytes(convert(tf.keras.Model(inp, logits), quantize=False))
    paths["segmenter"].write_bytes(convert(tf.keras.Model(inp, tf.keras.layers.Conv2D(2, 1)(inp)), quantize=False))
    return paths


@pytest.fixture(scope="session")
def tiny_mlpackages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tensor-input classifier and an image-input model without classifier outputs: both refused."""
    from convert.coreml.ctimport import import_coremltools

    ct = import_coremltools()
    root = tmp_path_factory.mktemp("tiny-coreml")
    traced, example = tiny_traced_classifier()
    common = {"convert_to": "mlprogram", "minimum_deployment_target": ct.target.iOS16}
    tensor_in = ct.convert(
        traced, inputs=[ct.TensorType(name="x", shape=example.shape)], classifier_config=ct.ClassifierConfig(["a", "b", "c"]), **common
    )
    image_in = ct.convert(traced, inputs=[ct.ImageType(name="image", shape=example.shape)], **common)
    paths = {"tensor_input": root / "tensor_input.mlpackage", "no_classifier": root / "no_classifier.mlpackage"}
    tensor_in.save(str(paths["tensor_input"]))
    image_in.save(str(paths["no_classifier"]))
    return paths
