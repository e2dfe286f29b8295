"""shvit-demo ios --model X.aimodel: the Core AI SwiftUI app parses, is specialised to the asset it was
generated from, bundles it as a resource of an iOS 27 app, and bad assets are refused with one line.

One tiny fused SHViT is exported to a Core AI asset per module (labels with quotes and non-ASCII,
to exercise the Swift escaping); the app is generated through the CLI in-process. The facts the
Swift code is compared with come from coreai-core's reader of the saved asset
(:func:`convert.coreai.inspect.facts`) and from the asset's own metadata.json, not from mobile_demo.
"""

from __future__ import annotations

import json
import plistlib
import shutil
from pathlib import Path

import pytest
import yaml
from demo_helpers import SWIFT, decode_literal, leftovers, nodes, one_line, run_demo_cli, swift_constants, syntax_problems

from convert.cli.common import run_command
from convert.cli.demo import demo_group
from convert.io.sidecar import sha256_path
from mobile_demo import DemoError, NotAnImageClassifier, generate_demo
from mobile_demo.output import MARKER

APP = "SHViTDemo"
LABELS = ["tabby cat", 'a "quoted" label', "crème brûlée", "back\\slash", "five"]
INPUT_SIZE = 64


@pytest.fixture(scope="module")
def asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny fused SHViT with five labelled classes as an fp16 Core AI asset."""
    import torch

    import shvit
    from convert.coreai.export import save_aimodel, to_aimodel
    from shvit.model import SHViT

    torch.manual_seed(0)
    config = shvit.SHViTConfig((32, 48, 64), (1, 2, 1), (8, 12, 16), num_classes=len(LABELS), img_size=INPUT_SIZE)
    deploy = shvit.reparameterize(SHViT(config).eval())
    exported = to_aimodel(
        deploy,
        input_size=INPUT_SIZE,
        labels=LABELS,
        precision="fp16",
        metadata={"variant": "auto", "weights_sha256": "0" * 64, "weights_source": "test"},
    )
    return save_aimodel(exported, tmp_path_factory.mktemp("coreai-asset") / "tiny shvit.aimodel")


@pytest.fixture(scope="module")
def facts(asset: Path) -> dict:
    from convert.coreai.inspect import facts

    return facts(asset)


@pytest.fixture(scope="module")
def app(asset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("coreai-app") / "demo"
    assert run_command(demo_group, ["ios", "--model", str(asset), "--out", str(out)]) == 0
    return out


def _swift(app: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(app.rglob("*.swift"))}


def _string_literals(path: Path) -> list[str | int | float | bool]:
    return [decode_literal(n.text.decode()) for n in nodes(SWIFT.parse(path.read_bytes()).root_node, "line_string_literal")]


def test_every_swift_file_parses(app: Path) -> None:
    sources = sorted(app.rglob("*.swift"))
    names = {p.name for p in sources}
    assert {
        "Classifier.swift",
        "ImageTensor.swift",
        "ModelInfo.swift",
        "Labels.swift",
        "CameraFeed.swift",
        "LatencyStats.swift",
        f"{APP}Tests.swift",
        f"{APP}App.swift",
    } <= names
    problems = [p for path in sources for p in syntax_problems(SWIFT, path)]
    assert not problems, problems


def test_model_info_and_labels_are_the_assets(app: Path, asset: Path, facts: dict) -> None:
    info = swift_constants(app / APP / "ModelInfo.swift")
    assert info["inputName"] == facts["input_name"] == "image"
    assert facts["input_shape"] == [1, 3, info["inputSize"], info["inputSize"]] and info["inputSize"] == INPUT_SIZE
    assert info["classCount"] == facts["num_classes"] == len(LABELS)
    assert info["outputName"] == "logits" and info["functionName"] == "main"
    assert info["sourceModel"] == asset.name and info["precision"] == facts["precision"] == "fp16"
    import calib

    assert info["cropFraction"] == calib.CROP_PCT
    stored = json.loads((asset / "metadata.json").read_text())["creatorDefinedMetadata"]["shvit.labels"]
    assert _string_literals(app / APP / "Labels.swift") == stored == facts["labels"] == LABELS


def test_feature_names_are_read_only_through_model_info(app: Path) -> None:
    for path in sorted(app.rglob("*.swift")):
        if path.name in ("ModelInfo.swift", "Labels.swift"):
            continue
        assert not {"image", "logits", "main"} & set(_string_literals(path)), path.name
    code = "\n".join(_swift(app).values())
    for use in ("ModelInfo.inputName", "ModelInfo.outputName", "ModelInfo.functionName", "ModelInfo.modelURL", "Labels.all"):
        assert use in code


def test_sources_use_core_ai_as_documented_and_not_core_ml(app: Path) -> None:
    code = _swift(app)
    classifier, tensor = code["Classifier.swift"], code["ImageTensor.swift"]
    assert "try await AIModel(contentsOf: url, options: computeChoice.options)" in classifier
    assert "model.loadFunction(named: ModelInfo.functionName)" in classifier
    assert "function.run(inputs: [ModelInfo.inputName: input])" in classifier
    assert "outputs.remove(ModelInfo.outputName)" in classifier and "value.ndArray" in classifier
    assert "view(as: Float.self).withUnsafePointer" in classifier and "inputDescriptor(of: ModelInfo.inputName)" in classifier
    for option in (
        "return .default",
        "SpecializationOptions(preferredComputeUnitKind: .neuralEngine)",
        "SpecializationOptions(preferredComputeUnitKind: .gpu)",
        "return .cpuOnly",
    ):
        assert option in classifier
    assert "#if !canImport(CoreAI)" in classifier and "#error(" in classifier
    assert "NDArray(scalars: planes(pixels), shape: [1, 3, ModelInfo.inputSize, ModelInfo.inputSize])" in tensor
    assert "interpolationQuality = .high" in tensor and ".rounded(.toNearestOrEven)" in tensor
    assert "exp(Double($0 - top))" in classifier  # softmax of the logits, max subtracted
    assert not any(line.strip() in ("import CoreML", "import Vision") for text in code.values() for line in text.splitlines())
    for interval in ("Specialize", "Load", "Preprocess", "Predict", "Postprocess"):
        assert f'= "{interval}"' in code["Signposts.swift"]
    assert "PhotosPicker" in code["ContentView.swift"] and "AVCaptureVideoDataOutput" in code["CameraFeed.swift"]
    assert "LatencyStats(samples:" in code["LatencyBenchmark.swift"] and "p90" in code["LatencyStats.swift"]
    tests = code[f"{APP}Tests.swift"]
    assert "XCTOSSignpostMetric(" in tests and "XCTClockMetric()" in tests and "functionDescriptor(for:" in tests


def test_project_yml_bundles_the_asset_in_an_ios27_app(app: Path, asset: Path) -> None:
    project = yaml.safe_load((app / "project.yml").read_text())
    assert project["options"]["xcodeVersion"] == "27.0" and project["options"]["deploymentTarget"]["iOS"] == "27.0"
    target = project["targets"][APP]
    assert target["type"] == "application" and target["platform"] == "iOS" and target["deploymentTarget"] == "27.0"
    resources = [s for s in target["sources"] if str(s["path"]).endswith(".aimodel")]
    assert len(resources) == 1 and resources[0]["buildPhase"] == "resources" and resources[0]["type"] == "folder"
    bundled = app / resources[0]["path"]
    assert sha256_path(bundled) == sha256_path(asset)
    assert swift_constants(app / APP / "ModelInfo.swift")["modelResource"] == bundled.stem
    tests = project["targets"][f"{APP}Tests"]
    assert tests["type"] == "bundle.unit-test" and {"target": APP} in tests["dependencies"]
    plist = plistlib.loads((app / APP / "Info.plist").read_bytes())
    for key in ("NSCameraUsageDescription", "NSPhotoLibraryUsageDescription", "CFBundleDisplayName"):
        assert plist[key] == target["info"]["properties"][key] and plist[key].strip()


def test_readme_and_marker(app: Path, asset: Path) -> None:
    readme = (app / "README.md").read_text()
    for needle in (
        "xcodegen generate",
        "Without XcodeGen",
        "Xcode 27.0",
        "iOS 27.0",
        "Instruments",
        "Core AI",
        "Points of Interest",
        "float32 1 × 3 × 64 × 64",
        "shorter side resized to 73",
    ):
        assert needle in readme, needle
    assert "@@" not in readme and "@@" not in (app / "project.yml").read_text()
    record = json.loads((app / MARKER).read_text())
    assert record["platform"] == "ios-coreai" and record["model"] == asset.name and str(asset.parent.resolve()) not in json.dumps(record)
    assert record["input"] == {"name": "image", "shape": [1, 3, 64, 64], "dtype": "float32", "range": "RGB 0-255"}
    assert record["output"] == {"name": "logits", "classes": len(LABELS)} and record["min_ios"] == 27
    assert record["model_file"] == "Models/tiny_shvit.aimodel" and (app / record["model_file"]).is_dir()


def test_generate_demo_dispatches_aimodel_and_names_it_in_refusals(asset: Path, tmp_path: Path) -> None:
    out = generate_demo(asset, tmp_path / "app")
    assert json.loads((out / MARKER).read_text())["platform"] == "ios-coreai"
    with pytest.raises(DemoError, match=r"a \.aimodel \(iOS \(Core AI\) app\)"):
        generate_demo(tmp_path / "model.onnx", tmp_path / "other")


def test_bad_assets_are_refused_with_one_line(asset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damaged = tmp_path / "damaged.aimodel"
    shutil.copytree(asset, damaged)
    (damaged / "main.mlirb").write_bytes(b"not a program")
    not_asset = tmp_path / "empty.aimodel"
    not_asset.mkdir()
    (not_asset / "notes.txt").write_text("hello")
    cases = [
        (tmp_path / "missing.aimodel", "does not exist"),
        (not_asset, "is not a Core AI asset"),
        (damaged, "is not a readable Core AI asset"),
        (tmp_path / "missing.mlpackage", "does not exist: give the .mlpackage of a coreml export"),
    ]
    for model, message in cases:
        code, out, err = run_demo_cli(["ios", "--model", str(model), "--out", str(tmp_path / "app")], capsys)
        assert code == 1 and out == "" and message in err, (model, err)
        assert one_line(err) and err.startswith("shvit-demo: error: ") and "Traceback" not in err, err
    assert not (tmp_path / "app").exists() and not leftovers(tmp_path)


def test_assets_without_labels_or_with_the_wrong_count_are_not_classifiers(asset: Path, tmp_path: Path) -> None:
    from mobile_demo.coreai_spec import read_coreai

    for name, labels in (("unlabelled", None), ("miscounted", LABELS[:3])):
        copy = tmp_path / f"{name}.aimodel"
        shutil.copytree(asset, copy)
        metadata = json.loads((copy / "metadata.json").read_text())
        if labels is None:
            del metadata["creatorDefinedMetadata"]["shvit.labels"]
        else:
            metadata["creatorDefinedMetadata"]["shvit.labels"] = labels
        (copy / "metadata.json").write_text(json.dumps(metadata))
        with pytest.raises(NotAnImageClassifier, match="no labels" if labels is None else "3 labels for 5 class scores"):
            read_coreai(copy)


def test_force_replaces_only_a_demo(asset: Path, app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo = tmp_path / "demo"
    shutil.copytree(app, demo)
    (demo / "stale.swift").write_text("// from an older run\n")
    code, _, err = run_demo_cli(["ios", "--model", str(asset), "--out", str(demo)], capsys)
    assert code == 1 and "--force" in err and one_line(err)
    code, out, _ = run_demo_cli(["ios", "--model", str(asset), "--out", str(demo), "--force"], capsys)
    assert code == 0 and out.strip() == str(demo) and not (demo / "stale.swift").exists() and (demo / MARKER).is_file()
