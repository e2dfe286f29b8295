"""Preprocessing as data on the variant, one normalisation, one pooled head, one reader per artifact part."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import randomize_bn

import calib
import shvit
from convert.tflite import metadata
from convert.tflite.graph import SHViTChannelsLastPool
from shvit.config import Preprocessing, SHViTConfig

TINY = SHViTConfig(embed_dim=(32, 48, 64), depth=(1, 1, 1), partial_dim=(8, 12, 16), num_classes=5, img_size=64)
LABELS = ["cat", "dog", "fish"]


# --- preprocessing as data ---------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "size", "resize"), [("s1", 224, 256), ("s3", 224, 256), ("s4", 256, 292)])
def test_every_variant_carries_its_eval_transform(variant: str, size: int, resize: int) -> None:
    prep = shvit.get_variant(variant).preprocessing
    assert prep == shvit.VARIANTS[variant].config.preprocessing
    assert (prep.input_size, prep.resize_size, prep.crop_fraction, prep.interpolation) == (size, resize, 0.875, "bicubic")
    assert prep.mean == (0.485, 0.456, 0.406) and prep.std == (0.229, 0.224, 0.225)


def test_old_names_are_the_dataclass_defaults() -> None:
    default = Preprocessing()
    assert calib.CROP_PCT == default.crop_fraction
    assert calib.IMAGENET_MEAN == shvit.IMAGENET_MEAN == default.mean
    assert calib.IMAGENET_STD == shvit.IMAGENET_STD == default.std


def test_preprocessing_is_frozen() -> None:
    with pytest.raises(AttributeError):
        Preprocessing().crop_fraction = 0.9  # type: ignore[misc]


# --- one normalisation -------------------------------------------------------------------------


def test_calib_normalize_is_the_shvit_one() -> None:
    assert calib.normalize is shvit.normalize


def test_normalize_is_bit_identical_to_the_plain_formula() -> None:
    pixels = np.random.default_rng(4).integers(0, 256, (3, 7, 5, 3), dtype=np.uint8)
    mean, std = np.float32(Preprocessing().mean), np.float32(Preprocessing().std)
    plain = ((pixels.astype(np.float32) / np.float32(255.0) - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(shvit.normalize(pixels), plain)
    np.testing.assert_array_equal(shvit.normalize(pixels[0]), plain[0])


def test_normalize_takes_other_statistics() -> None:
    pixels = np.full((2, 2, 3), 255, np.uint8)
    np.testing.assert_array_equal(shvit.normalize(pixels, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)), np.ones((3, 2, 2), np.float32))


# --- one pooled head ---------------------------------------------------------------------------


@pytest.mark.parametrize("distillation", [False, True])
def test_forward_head_is_pool_then_head(distillation: bool) -> None:
    torch.manual_seed(0)
    model = randomize_bn(shvit.SHViT(replace(TINY, distillation=distillation)), seed=3)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = features.mean((2, 3))
        expected = model.head(pooled) if not distillation else (model.head(pooled) + model.head_dist(pooled)) / 2
        torch.testing.assert_close(model.forward_head(features), expected, rtol=0, atol=0)
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


def test_tflite_channels_last_pool_is_the_same_mean() -> None:
    model = shvit.SHViT(TINY)
    features = torch.randn(2, 64, 4, 4)
    torch.testing.assert_close(SHViTChannelsLastPool.global_pool(model, features), model.global_pool(features))


# --- readers return what was written ----------------------------------------------------------


def _bare_tflite() -> bytes:
    """A valid TFLite flatbuffer with one (1, 8, 8, 3) input and a (1, 3) output, built from the schema."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: str, shape: list[int]) -> schema.TensorT:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), np.array(shape, np.int32), schema.TensorType.FLOAT32, 0
        return t

    graph = schema.SubGraphT()
    graph.tensors = [tensor("in", [1, 8, 8, 3]), tensor("out", [1, len(LABELS)])]
    graph.inputs, graph.outputs, graph.operators = np.array([0], np.int32), np.array([1], np.int32), []
    model = schema.ModelT()
    model.version, model.subgraphs, model.buffers, model.operatorCodes = 3, [graph], [schema.BufferT()], []
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _info() -> metadata.ModelInfo:
    return metadata.ModelInfo(
        name="SHViT",
        description="test",
        version="fp32",
        labels=LABELS,
        labels_file="m.labels.txt",
        input_size=8,
        input_description="pixels",
        output_description="logits",
    )


def test_tflite_readers_return_the_labels_written(tmp_path: Path) -> None:
    from mobile_demo.tflite_spec import read_tflite

    data = metadata.embed(_bare_tflite(), _info())
    assert metadata.packed_labels(data, num_classes=3) == ("m.labels.txt", LABELS)
    assert metadata.packed_labels(data, num_classes=4) is None
    assert (metadata.shvit_record(data) or {})["labels_file"] == "m.labels.txt"
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert metadata.read(path)["files"]["m.labels.txt"].splitlines() == LABELS
    facts = read_tflite(path)
    assert list(facts.labels) == LABELS and facts.label_source.kind == "metadata" and facts.crop_fraction == calib.CROP_PCT


def test_packed_labels_prefer_the_declared_file_and_skip_other_files(tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(metadata.embed(_bare_tflite(), _info()))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("a_labels.txt", "x\ny\nz\n")  # sorts first by name, but is not the declared one
        archive.writestr("blank_labels.txt", "p\n\nq\n")
    assert metadata.packed_labels(path.read_bytes(), num_classes=3) == ("m.labels.txt", LABELS)
    assert metadata.packed_labels(_bare_tflite(), num_classes=3) is None


def test_coreml_reader_returns_the_labels_written(tmp_path: Path) -> None:
    from convert.coreml.ctimport import import_coremltools
    from mobile_demo.coreml_spec import facts_from_spec

    ct = import_coremltools()
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, len(LABELS))
    ).eval()
    traced = torch.jit.trace(net, torch.zeros(1, 3, 32, 32))
    mlmodel = ct.convert(
        traced,
        inputs=[ct.ImageType(name="image", shape=(1, 3, 32, 32))],
        convert_to="mlprogram",
        classifier_config=ct.ClassifierConfig(LABELS),
        minimum_deployment_target=ct.target.iOS16,
    )
    facts = facts_from_spec(mlmodel.get_spec(), tmp_path / "m.mlpackage")
    assert list(facts.class_labels) == LABELS and facts.crop_fraction == calib.CROP_PCT
