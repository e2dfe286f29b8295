"""Core ML export: the classifier package a user gets from ``shvit-convert --target coreml``.

Parity runs through the reference MIL executor on Linux (Core ML's runtime exists only on macOS;
the one test that needs it is skipped elsewhere, saying so). Models have image-dependent logits
(BN statistics measured on generated images, or the tiny trained model), so agreement means
something.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_close, assert_common_export_record, export_source, recompute_bn_stats, trained_like

import calib
import shvit
from convert.api.pipeline import ExportResult
from convert.cli.common import run_command
from convert.cli.convert import convert_command
from convert.config import ExportOptions, ModelSpec, plan
from convert.coreml.ctimport import import_coremltools
from convert.coreml.export import LOGITS_NAME, export_coreml
from convert.coreml.graph import PIXEL_BIAS, CoreMLClassifierGraph, CoreMLSHSA
from convert.coreml.mil_executor import MILExecutor
from convert.coreml.quantize import FLOAT_WEIGHT_PREFIXES
from convert.coreml.target import COREML_INT8
from convert.coreml.target import TARGET as COREML
from convert.errors import ConvertError
from convert.int8.engine import PLAIN_FULL_INT8
from convert.labels import imagenet_labels
from convert.parity import compare
from convert.source import ModelSource, load_source
from shvit.layers import SHSADeploy

ON_MACOS = sys.platform == "darwin"
CHECK_IMAGES = 16
CALIB_IMAGES = 16


def _model_spec(path: Path):
    return import_coremltools().utils.load_spec(str(path))


def _image_folder(root: Path, pixels: np.ndarray) -> Path:
    calib.write_dataset(root, pixels, [0] * len(pixels), ["photos"])
    return root


def _checkpoint(variant: str, root: Path, *, seed: int) -> Path:
    """A trained-like checkpoint (see :func:`helpers.trained_like`)."""
    model = trained_like(variant, seed=seed)
    path = root / f"{variant}.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


def _export(source: ModelSource, *, out_dir: Path, images: Path, **options: object) -> ExportResult:
    """The pipeline on a loaded model; a failed parity check is a result, so each test reports its own figures."""
    return export_source(source, target="coreml", out_dir=out_dir, images=images, **options)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("coreml-images")
    return {
        "calib": _image_folder(root / "calib", calib.synthetic_images(CALIB_IMAGES, 224, seed=21)),
        "check": _image_folder(root / "check", calib.synthetic_images(CHECK_IMAGES, 224, seed=42)),
    }


@dataclass
class S1Exports:
    source: ModelSource
    outcomes: dict[str, ExportResult]

    def __getitem__(self, precision: str) -> ExportResult:
        return self.outcomes[precision]


@pytest.fixture(scope="module")
def s1(tmp_path_factory: pytest.TempPathFactory, folders: dict[str, Path]) -> S1Exports:
    """S1 exported in all four precisions through the pipeline (parity in the runner subprocess)."""
    root = tmp_path_factory.mktemp("coreml-s1")
    source = load_source(ModelSpec(variant="s1", weights=_checkpoint("s1", root, seed=3)))
    outcomes = {}
    for precision in COREML.precisions:
        # int8 in full mode (every op W8A8): the accuracy-aware search is tested in test_int8 on image-dependent S1
        extra = {"calib": folders["calib"], "calib_count": CALIB_IMAGES, "int8_mode": "full"} if precision == "int8" else {}
        outcomes[precision] = _export(source, out_dir=root / "out", images=folders["check"], precision=precision, **extra)
    return S1Exports(source, outcomes)


@pytest.mark.parametrize("precision", ["fp16", "fp32", "int8-weights"])
def test_s1_parity_within_tolerance(s1: S1Exports, precision: str) -> None:
    outcome = s1[precision]
    assert outcome.path.name == f"shvit_s1_{precision.replace('-', '_')}.mlpackage" and outcome.path.is_dir()
    assert outcome.passed, f"{precision}: {outcome.parity.summary()}"
    assert_common_export_record(outcome.sidecar, classes=1000)
    assert outcome.parity.images == CHECK_IMAGES
    if not ON_MACOS:
        assert "reference MIL executor" in outcome.runtime and "Core ML cannot run on Linux" in outcome.runtime


def test_s1_w8a8_parity_is_checked_and_keeps_the_cosine(s1: S1Exports) -> None:
    """Calibrated on one image folder, checked on another. Top-1 agreement is asserted on the trained
    tiny model below: with random weights the top classes are near-ties, so their order is noise."""
    outcome = s1["int8"]
    assert outcome.path.name == "shvit_s1_int8.mlpackage" and outcome.parity.images == CHECK_IMAGES
    assert outcome.parity.cosine >= COREML_INT8.cosine, outcome.parity.summary()
    record = json.loads(Path(f"{outcome.path}.json").read_text())
    assert record["parity"]["cosine"] == outcome.parity.cosine and record["export"]["calibration"] == f"{CALIB_IMAGES} images from calib"


def test_fp32_package_reproduces_pytorch_exactly_including_the_image_front_end(s1: S1Exports) -> None:
    """Mean in the ImageType bias, 1/(255·std) in the stem: exact, even at zero-padded borders and pure black/white."""
    report = s1["fp32"].parity
    assert report.max_rel < 1e-5, report.summary()
    pixels = calib.synthetic_images(2, 224, seed=5)
    pixels[0, :, :8] = 255
    pixels[1, :8] = 0
    with torch.no_grad():
        expected = s1.source.pixel_model(torch.from_numpy(pixels).permute(0, 3, 1, 2).float()).numpy()
    assert_close(MILExecutor(s1["fp32"].path).logits(pixels), expected, rel=1e-5, what="fp32 package vs PixelInput")


def test_package_is_an_image_classifier_with_labels_and_metadata(s1: S1Exports) -> None:
    path = s1["fp16"].path
    spec = _model_spec(path)
    (image,) = spec.description.input
    assert image.name == "image" and image.type.WhichOneof("Type") == "imageType"
    assert (image.type.imageType.width, image.type.imageType.height) == (224, 224)
    assert image.type.imageType.colorSpace == 20  # RGB
    assert spec.description.predictedFeatureName == "classLabel"
    assert spec.description.predictedProbabilitiesName == "classLabel_probs"
    assert [o.name for o in spec.description.output] == ["classLabel", "classLabel_probs", LOGITS_NAME]
    classify = next(op for op in _main_block(spec).operations if op.type == "classify")
    labels = [v.immediateValue.tensor.strings.values[0] for v in classify.inputs["classes"].arguments[0].value.immediateValue.list.values]
    assert labels == imagenet_labels()
    meta = spec.description.metadata
    assert "SHViT-S1" in meta.shortDescription and "224x224" in meta.shortDescription
    assert meta.author and meta.license and meta.versionString
    user = dict(meta.userDefined)
    record = json.loads(Path(f"{path}.json").read_text())
    assert user["shvit.variant"] == "s1" and user["shvit.input_size"] == "224" and user["shvit.precision"] == "fp16"
    assert user["shvit.mean"] == "0.485,0.456,0.406" and user["shvit.std"] == "0.229,0.224,0.225"
    assert user["shvit.weights_sha256"] == record["weights"]["sha256"] and len(user["shvit.weights_sha256"]) == 64
    assert user["shvit.weights_source"] == record["weights"]["source"]
    assert user["shvit.toolkit_version"] and user["com.github.apple.coremltools.version"]
    assert record["parity"]["passed"] and record["export"]["non_const_ops"] > 0


def _main_block(spec):
    function = spec.mlProgram.functions["main"]
    return function.block_specializations[function.opset]


def test_deployment_targets_and_quantised_forms(s1: S1Exports) -> None:
    specs = {p: _model_spec(o.path) for p, o in s1.outcomes.items()}
    assert {p: s.specificationVersion for p, s in specs.items()} == {"fp16": 7, "fp32": 7, "int8-weights": 7, "int8": 8}
    ops = {p: {op.type for op in _main_block(s).operations} for p, s in specs.items()}
    assert "constexpr_affine_dequantize" in ops["int8-weights"] and "quantize" not in ops["int8-weights"]
    int8_weights = [op.outputs[0].name for op in _main_block(specs["int8-weights"]).operations if op.type.startswith("constexpr_")]
    float_weights = [op.outputs[0].name for op in _main_block(specs["int8-weights"]).operations if op.type == "const"]
    assert len(int8_weights) > 30 and not [n for n in int8_weights if n.startswith(FLOAT_WEIGHT_PREFIXES)]
    assert {"model_head_weight_to_fp16", "model_patch_embed_6_weight_to_fp16"} <= set(float_weights), "stem and head stay fp16"
    assert {"quantize", "dequantize"} <= ops["int8"]
    sizes = {p: o.sidecar["export"]["size_bytes"] for p, o in s1.outcomes.items()}
    assert sizes["int8-weights"] < 0.6 * sizes["fp16"] and sizes["int8"] < 0.6 * sizes["fp16"], sizes
    assert 0.45 * sizes["fp32"] < sizes["fp16"] < 0.55 * sizes["fp32"], sizes
    for precision, outcome in s1.outcomes.items():
        assert MILExecutor(outcome.path).logits_name() == LOGITS_NAME, f"{precision}: softmax input is not the logits output"


def test_graph_is_lean_for_the_neural_engine(s1: S1Exports) -> None:
    """One layer_norm per attention (no decomposed GroupNorm), two reshapes around it, nothing rank 5."""
    block = _main_block(_model_spec(s1["fp16"].path))
    ops = [op for op in block.operations if op.type != "const"]
    attention_blocks = sum(isinstance(m, SHSADeploy) for m in s1.source.deploy.modules())
    types = [op.type for op in ops]
    assert types.count("layer_norm") == attention_blocks
    assert types.count("reshape") == 2 * attention_blocks
    assert not {"sqrt", "real_div", "sub", "square", "batch_norm", "instance_norm", "transpose", "slice_by_index"} & set(types)
    ranks = {len(o.type.tensorType.dimensions) for op in ops for o in op.outputs if o.type.WhichOneof("type") == "tensorType"}
    assert max(ranks) <= 4, ranks


@pytest.mark.skipif(ON_MACOS, reason="on macOS the runtime is Core ML itself, not the reference executor")
def test_linux_runtime_is_the_reference_executor_and_says_so(s1: S1Exports) -> None:
    pixels = calib.synthetic_images(3, 224, seed=8)
    loaded = COREML.runtime.open(s1["int8-weights"].path, threads=None)
    assert loaded.predict(pixels).shape == (3, 1000)
    assert loaded.runtime == "reference MIL executor, fp16 emulated (Core ML cannot run on Linux)"


@pytest.mark.skipif(not ON_MACOS, reason="Core ML's runtime exists only on macOS; elsewhere the reference MIL executor checks packages")
def test_core_ml_runtime_agrees_with_pytorch_and_the_executor(s1: S1Exports) -> None:
    pixels = calib.synthetic_images(4, 224, seed=8)
    loaded = COREML.runtime.open(s1["fp16"].path, threads=None)
    logits = loaded.predict(pixels)
    assert loaded.runtime.startswith("Core ML")
    assert compare(MILExecutor(s1["fp16"].path).logits(pixels), logits).cosine > 0.999


def test_w8a8_on_the_trained_tiny_model_keeps_cosine_and_top1(tiny, tmp_path: Path) -> None:
    """Calibrated on half the held-out images, judged on all of them, labels from --labels."""
    min_ios = plan(ExportOptions(target="coreml", precision="int8", calib=tiny.images_dir)).options["min_ios"]
    source = load_source(ModelSpec(weights=tiny.checkpoint, input_size=tiny.input_size, labels=tiny.labels_file))
    held_out = calib.load_folder(tiny.images_dir, size=tiny.input_size, progress=False)
    calibration = held_out.pixels[::2]
    result = export_coreml(
        source.deploy,
        tmp_path / "tiny_int8.mlpackage",
        input_size=tiny.input_size,
        labels=source.labels,
        precision="int8",
        min_ios=min_ios,
        calib_pixels=calibration,
        int8=PLAIN_FULL_INT8,  # every op W8A8: the plain conversion must keep the trained model's accuracy
    )
    assert result.spec_version == 8
    reference, w8a8 = source.reference_logits(held_out.pixels), MILExecutor(result.path).logits(held_out.pixels)
    report = compare(reference, w8a8)
    assert report.cosine >= COREML_INT8.cosine and report.top1 >= COREML_INT8.top1, report.summary()
    truth = np.asarray([tiny.class_names.index(held_out.class_names[i]) for i in held_out.labels])
    accuracy, reference_accuracy = (float(np.mean(logits.argmax(1) == truth)) for logits in (w8a8, reference))
    assert accuracy >= reference_accuracy - 0.02 and accuracy > 0.8, f"W8A8 accuracy {accuracy:.3f} vs PyTorch {reference_accuracy:.3f}"
    classify = next(op for op in _main_block(_model_spec(result.path)).operations if op.type == "classify")
    labels = [v.immediateValue.tensor.strings.values[0] for v in classify.inputs["classes"].arguments[0].value.immediateValue.list.values]
    assert labels == tiny.class_names


def test_core_ml_graph_rewrite_computes_the_deploy_models_function() -> None:
    """layer_norm for GroupNorm(1), one qkv reshape, flag transposes, mean in the input bias: same function."""
    config = shvit.SHViTConfig((32, 48, 64), (1, 2, 1), (8, 12, 16), num_classes=7, img_size=64)
    deploy = shvit.reparameterize(recompute_bn_stats(shvit.SHViT(config), size=64, images=8))
    graph = CoreMLClassifierGraph(deploy).eval()
    assert sum(isinstance(m, CoreMLSHSA) for m in graph.modules()) == 3
    pixels = torch.from_numpy(calib.synthetic_images(4, 64, seed=6)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        probs, logits = graph(pixels + torch.tensor(PIXEL_BIAS)[None, :, None, None])
        expected = shvit.PixelInput(deploy)(pixels)
    assert_close(logits.numpy(), expected.numpy(), rel=1e-5, what="rewritten graph vs PixelInput(deploy)")
    assert_close(probs.numpy(), expected.softmax(-1).numpy(), rel=1e-5, what="probabilities")


def test_min_ios_auto_and_an_explicit_target_too_old_for_w8a8(tmp_path: Path) -> None:
    def min_ios(precision: str | None = None, **given: str) -> str:
        return plan(ExportOptions(target="coreml", precision=precision, calib=tmp_path, target_options=given)).options["min_ios"]

    assert min_ios() == "16"
    assert min_ios("int8") == "17"
    assert min_ios("int8", min_ios="18") == "18"
    assert min_ios("int8-weights", min_ios="16") == "16"
    with pytest.raises(ConvertError, match=r"^min_ios: int8 \(W8A8\) needs iOS 17\+.*target iOS 17"):
        min_ios("int8", min_ios="16")


def test_cli_refuses_int8_for_ios16_in_one_line_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_command(
        convert_command,
        [
            "--variant",
            "s1",
            "--target",
            "coreml",
            "--random-init",
            "--precision",
            "int8",
            "--calib",
            str(tmp_path),
            "--min-ios",
            "16",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("shvit-convert: error: --min-ios: ") and "target iOS 17" in err[0]
    assert not (tmp_path / "out").exists()


def test_export_coreml_rejects_inconsistent_options(tmp_path: Path) -> None:
    deploy = shvit.reparameterize(shvit.SHViT(shvit.SHViTConfig((32, 48, 64), (1, 1, 1), (8, 12, 16), num_classes=4, img_size=64)))
    with pytest.raises(ConvertError, match="3 labels for a model with 4 classes"):
        export_coreml(deploy, tmp_path / "a.mlpackage", input_size=64, labels=["a", "b", "c"])
    with pytest.raises(ConvertError, match=r"^calib: int8 calibrates activations on images: give a folder of photos"):
        export_coreml(deploy, tmp_path / "b.mlpackage", input_size=64, labels=list("abcd"), precision="int8", min_ios="17")
    with pytest.raises(ConvertError, match="iOS 17"):
        export_coreml(
            deploy,
            tmp_path / "c.mlpackage",
            input_size=64,
            labels=list("abcd"),
            precision="int8",
            calib_pixels=np.zeros((1, 64, 64, 3), np.uint8),
        )
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_s3_fp16_parity(tmp_path_factory: pytest.TempPathFactory, folders: dict[str, Path]) -> None:
    root = tmp_path_factory.mktemp("coreml-s3")
    source = load_source(ModelSpec(variant="s3", weights=_checkpoint("s3", root, seed=4)))
    outcome = _export(source, out_dir=root / "out", images=folders["check"])
    assert outcome.passed, outcome.parity.summary()
    assert outcome.sidecar["export"]["spec_version"] == 7 and outcome.sidecar["export"]["op_counts"]["layer_norm"] == 10
