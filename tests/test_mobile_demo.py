"""shvit-demo: generated iOS and Android projects parse, hold the keys their build tools need, and are
specialised to the model they were generated from; bad input is refused with one line and nothing written.

The real-export tests generate from S1 exports made by the pipeline (random weights: the demo only
reads the model's interface). The model facts they compare against come from coremltools' spec and
LiteRT's interpreter, not from mobile_demo's own readers. Small hand-made models cover what S1
exports do not have: quantised input, a softmax output, labels packed in the model, refusals.
"""

from __future__ import annotations

import json
import plistlib
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from demo_helpers import (
    ANDROID_SOURCES,
    KOTLIN,
    SWIFT,
    decode_literal,
    kotlin_constants,
    leftovers,
    nodes,
    one_line,
    run_demo_cli,
    swift_constants,
    syntax_problems,
)

from convert.io.sidecar import sha256_path
from mobile_demo import DemoError, NotAnImageClassifier, generate_demo
from mobile_demo.output import MARKER, STAGING_PREFIX

CHECK_IMAGES = 2
"""Parity images for the S1 exports: the exporters' own tests check parity; here only the interface matters."""


# --- fixtures: real S1 exports, the projects generated from them, small hand-made models ----------------


def _export(tmp: Path, target: str) -> Path:
    import calib
    import convert

    images = tmp / "images" / "any"
    images.mkdir(parents=True)
    for i, pixels in enumerate(calib.synthetic_images(CHECK_IMAGES, 256, seed=3)):
        from PIL import Image

        Image.fromarray(pixels).save(images / f"{i}.png")
    return convert.export("s1", target=target, out_dir=tmp / "export", weights=None, images=tmp / "images").path


def _exported(artifact: Path) -> dict:
    """The export settings recorded in ``artifact``'s sidecar."""
    return json.loads(artifact.with_name(artifact.name + ".json").read_text())["config"]


@pytest.fixture(scope="module")
def s1_coreml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("s1-coreml"), "coreml")


@pytest.fixture(scope="module")
def s1_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("s1-tflite"), "tflite")


@pytest.fixture(scope="module")
def ios_project(s1_coreml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo(s1_coreml, tmp_path_factory.mktemp("ios") / "app")


@pytest.fixture(scope="module")
def android_project(s1_tflite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo(s1_tflite, tmp_path_factory.mktemp("android") / "app")


# --- iOS from the real S1 Core ML export -------------------------------------------------------------


def test_ios_swift_sources_parse_without_errors(ios_project: Path) -> None:
    sources = sorted(ios_project.rglob("*.swift"))
    assert len(sources) >= 12
    problems = [p for path in sources for p in syntax_problems(SWIFT, path)]
    assert not problems, problems


def test_ios_model_info_matches_the_package_spec(ios_project: Path, s1_coreml: Path) -> None:
    from convert.coreml.ctimport import import_coremltools

    spec = import_coremltools().utils.load_spec(str(s1_coreml))
    image_input = spec.description.input[0]
    info = swift_constants(ios_project / "SHViTDemo" / "ModelInfo.swift")
    assert info["inputName"] == image_input.name
    assert info["inputWidth"] == image_input.type.imageType.width == _exported(s1_coreml)["input_size"] == 224
    assert info["inputHeight"] == image_input.type.imageType.height == 224
    assert info["classLabelOutputName"] == spec.description.predictedFeatureName
    assert info["probabilitiesOutputName"] == spec.description.predictedProbabilitiesName
    assert info["classCount"] == _exported(s1_coreml)["num_classes"] == 1000
    assert info["sourceModel"] == s1_coreml.name
    import calib

    assert info["cropFraction"] == calib.CROP_PCT


def test_ios_code_reads_feature_names_only_through_model_info(ios_project: Path, s1_coreml: Path) -> None:
    from convert.coreml.ctimport import import_coremltools

    spec = import_coremltools().utils.load_spec(str(s1_coreml))
    names = {spec.description.input[0].name, spec.description.predictedFeatureName, spec.description.predictedProbabilitiesName}
    for path in sorted(ios_project.rglob("*.swift")):
        if path.name == "ModelInfo.swift":
            continue
        literals = {decode_literal(n.text.decode()) for n in nodes(SWIFT.parse(path.read_bytes()).root_node, "line_string_literal")}
        assert not names & literals, f"{path.name} hard-codes {names & literals}"
    text = "\n".join(p.read_text() for p in (ios_project / "SHViTDemo").glob("*.swift"))
    for use in ("ModelInfo.inputName", "ModelInfo.probabilitiesOutputName", "ModelInfo.compiledModelURL"):
        assert use in text


def test_ios_project_yml_builds_the_model_into_an_ios17_app_with_tests(ios_project: Path, s1_coreml: Path) -> None:
    project = yaml.safe_load((ios_project / "project.yml").read_text())
    app = project["targets"]["SHViTDemo"]
    assert app["type"] == "application" and app["platform"] == "iOS"
    assert float(app["deploymentTarget"]) >= 17 and float(project["options"]["deploymentTarget"]["iOS"]) >= 17
    model_sources = [s for s in app["sources"] if str(s["path"]).endswith(".mlpackage")]
    assert len(model_sources) == 1 and model_sources[0]["buildPhase"] == "sources" and model_sources[0]["type"] == "file"
    bundled = ios_project / model_sources[0]["path"]
    assert sha256_path(bundled) == sha256_path(s1_coreml)
    info = swift_constants(ios_project / "SHViTDemo" / "ModelInfo.swift")
    model_info = (ios_project / "SHViTDemo" / "ModelInfo.swift").read_text()
    assert f"{bundled.stem}.urlOfModelInThisBundle" in model_info  # the class Xcode generates from the file name
    assert info["sourceModel"] == s1_coreml.name
    properties = app["info"]["properties"]
    assert properties["NSCameraUsageDescription"] and properties["NSPhotoLibraryUsageDescription"]
    tests = project["targets"]["SHViTDemoTests"]
    assert tests["type"] == "bundle.unit-test" and {"target": "SHViTDemo"} in tests["dependencies"]
    assert "SHViTDemoTests" in project["schemes"]["SHViTDemo"]["test"]["targets"]
    assert app["settings"]["base"]["PRODUCT_BUNDLE_IDENTIFIER"]


def test_ios_info_plist_loads_and_matches_project_yml(ios_project: Path) -> None:
    plist = plistlib.loads((ios_project / "SHViTDemo" / "Info.plist").read_bytes())
    properties = yaml.safe_load((ios_project / "project.yml").read_text())["targets"]["SHViTDemo"]["info"]["properties"]
    for key in ("NSCameraUsageDescription", "NSPhotoLibraryUsageDescription", "CFBundleDisplayName"):
        assert plist[key] == properties[key] and plist[key].strip()
    assert plist["CFBundleIdentifier"] == "$(PRODUCT_BUNDLE_IDENTIFIER)"


def test_ios_sources_use_the_apis_the_issue_names(ios_project: Path) -> None:
    app = {p.name: p.read_text() for p in (ios_project / "SHViTDemo").glob("*.swift")}
    tests = (ios_project / "SHViTDemoTests" / "SHViTDemoTests.swift").read_text()
    assert "VNCoreMLRequest" in app["Classifier.swift"] and "imageCropAndScaleOption = .centerCrop" in app["Classifier.swift"]
    assert "model.prediction(from:" in app["Classifier.swift"]
    assert "OSSignposter(subsystem: subsystem, category: .pointsOfInterest)" in app["Signposts.swift"]
    assert "Bundle.main.bundleIdentifier" in app["Signposts.swift"]
    for interval in ("Load", "Preprocess", "Predict", "Postprocess"):
        assert f'= "{interval}"' in app["Signposts.swift"]
    for units in (".all", ".cpuAndNeuralEngine", ".cpuAndGPU", ".cpuOnly"):
        assert f"return {units}" in app["Classifier.swift"]
    assert "#available(iOS 17.4, *)" in app["ContentView.swift"] and "MLComputePlan.load" in app["ComputePlanView.swift"]
    assert "estimatedCost(of:" in app["ComputePlanView.swift"] and "deviceUsage(for:" in app["ComputePlanView.swift"]
    assert "PhotosPicker" in app["ContentView.swift"] and "AVCaptureVideoDataOutput" in app["CameraFeed.swift"]
    assert "XCTOSSignpostMetric(" in tests and "XCTClockMetric()" in tests


def test_ios_readme_gives_the_commands_and_profiling_steps(ios_project: Path) -> None:
    readme = (ios_project / "README.md").read_text()
    for needle in (
        "xcodegen generate",
        "open SHViTDemo.xcodeproj",
        "Without XcodeGen",
        "Performance",
        "Instruments",
        "Points of Interest",
        "Time Profiler",
        "Core ML",
    ):
        assert needle in readme


# --- Android from the real S1 TFLite export ----------------------------------------------------------


def _interpreter_details(model: Path) -> tuple[dict, dict]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    return interpreter.get_input_details()[0], interpreter.get_output_details()[0]


def test_android_kotlin_sources_and_gradle_scripts_parse_without_errors(android_project: Path) -> None:
    sources = sorted(android_project.rglob("*.kt")) + sorted(android_project.rglob("*.kts"))
    assert len(sources) >= 11
    problems = [p for path in sources for p in syntax_problems(KOTLIN, path)]
    assert not problems, problems


def _check_model_spec(project: Path, model: Path) -> dict[str, str | int | float | bool]:
    """ModelSpec.kt against LiteRT's own view of the model; returns the constants."""
    spec = kotlin_constants(project / ANDROID_SOURCES / "ModelSpec.kt")
    inp, out = _interpreter_details(model)
    layout_nhwc = list(inp["shape"][1:]) == [spec["INPUT_HEIGHT"], spec["INPUT_WIDTH"], 3]
    assert layout_nhwc == (spec["INPUT_LAYOUT"] == "NHWC")
    assert list(inp["shape"]) == (
        [1, spec["INPUT_HEIGHT"], spec["INPUT_WIDTH"], 3] if layout_nhwc else [1, 3, spec["INPUT_HEIGHT"], spec["INPUT_WIDTH"]]
    )
    assert spec["INPUT_TYPE"] == np.dtype(inp["dtype"]).name.upper()
    assert spec["OUTPUT_TYPE"] == np.dtype(out["dtype"]).name.upper()
    assert spec["INPUT_NAME"] == inp["name"] and spec["OUTPUT_NAME"] == out["name"]
    assert spec["NUM_CLASSES"] == out["shape"][-1]
    assert spec["INPUT_SCALE"] == pytest.approx(inp["quantization"][0]) and spec["INPUT_ZERO_POINT"] == inp["quantization"][1]
    assert spec["OUTPUT_SCALE"] == pytest.approx(out["quantization"][0]) and spec["OUTPUT_ZERO_POINT"] == out["quantization"][1]
    asset = project / "app/src/main/assets" / spec["MODEL_ASSET"]
    assert asset.read_bytes() == model.read_bytes()
    if spec["LABEL_SOURCE"] == "ASSET":
        labels = (project / "app/src/main/assets" / spec["LABELS_FILE"]).read_text().splitlines()
    else:
        with zipfile.ZipFile(asset) as archive:
            labels = archive.read(spec["LABELS_FILE"]).decode().splitlines()
    assert len([line for line in labels if line.strip()]) == spec["NUM_CLASSES"]
    return spec


def test_android_model_spec_matches_the_model(android_project: Path, s1_tflite: Path) -> None:
    spec = _check_model_spec(android_project, s1_tflite)
    assert spec["INPUT_HEIGHT"] == spec["INPUT_WIDTH"] == _exported(s1_tflite)["input_size"] == 224
    assert spec["NUM_CLASSES"] == _exported(s1_tflite)["num_classes"] == 1000
    assert spec["SOURCE_MODEL"] == s1_tflite.name


def test_android_manifest_and_gradle_files_hold_the_required_keys(android_project: Path) -> None:
    android = "{http://schemas.android.com/apk/res/android}"
    manifest = ET.parse(android_project / "app/src/main/AndroidManifest.xml").getroot()
    assert "android.permission.CAMERA" in {e.get(f"{android}name") for e in manifest.iter("uses-permission")}
    activity = manifest.find("application/activity")
    assert activity is not None and activity.get(f"{android}name") == ".MainActivity"
    assert {e.get(f"{android}name") for e in activity.iter("action")} == {"android.intent.action.MAIN"}
    assert manifest.find("application/profileable") is not None
    app_gradle = (android_project / "app/build.gradle.kts").read_text()
    for needle in (
        '"com.google.ai.edge.litert:litert:$litertVersion"',
        '"com.google.ai.edge.litert:litert-gpu:$litertVersion"',
        "androidx.camera:camera-camera2",
        "androidx.camera:camera-lifecycle",
        "androidx.compose.material3:material3",
        'noCompress += "tflite"',
        "compose = true",
        'id("org.jetbrains.kotlin.plugin.compose")',
    ):
        assert needle in app_gradle
    assert 'include(":app")' in (android_project / "settings.gradle.kts").read_text()
    wrapper = (android_project / "gradle/wrapper/gradle-wrapper.properties").read_text()
    assert re.search(r"distributionUrl=https\\://services\.gradle\.org/distributions/gradle-[\d.]+-bin\.zip", wrapper)


def test_android_sources_use_the_apis_the_issue_names(android_project: Path) -> None:
    code = {p.name: p.read_text() for p in (android_project / ANDROID_SOURCES).glob("*.kt")}
    assert "Trace.beginSection(name)" in code["Tracing.kt"] and "Trace.endSection()" in code["Tracing.kt"]
    for section in ("LOAD", "PREPROCESS", "PREDICT", "POSTPROCESS"):
        assert f"traced(Sections.{section})" in code["ModelRunner.kt"]
    assert "setUseXNNPACK(true)" in code["ModelRunner.kt"] and "GpuDelegate(" in code["ModelRunner.kt"]
    assert "ImageAnalysis.Builder()" in code["CameraPane.kt"] and "PickVisualMedia" in code["MainActivity.kt"]
    assert "LatencyStats(" in code["LatencyBenchmark.kt"] and "p90" in code["LatencyBenchmark.kt"]
    readme = (android_project / "README.md").read_text()
    assert "perfetto" in readme and "Android Studio" in readme


# --- hand-made models: quantised input, softmax output, packed labels, odd names -----------------------


def test_android_quantised_model_with_packed_labels(tiny_tflites: dict[str, Path], tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    model = tiny_tflites["quantized"]
    project = generate_demo(model, tmp_path / "app")
    spec = _check_model_spec(project, model)
    assert spec["INPUT_TYPE"] == "UINT8" and spec["INPUT_SCALE"] > 0
    assert spec["LABEL_SOURCE"] == "MODEL_METADATA" and spec["LABELS_FILE"] == "tiny_labels.txt"
    assert not (project / "app/src/main/assets/labels.txt").exists()
    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], np.random.default_rng(0).integers(0, 256, inp["shape"], dtype=np.uint8))
    interpreter.invoke()
    scale, zero = out["quantization"]
    probabilities = (interpreter.get_tensor(out["index"]).astype(np.float32) - zero) * scale
    assert spec["OUTPUT_IS_PROBABILITIES"] is True and probabilities.sum() == pytest.approx(1.0, abs=0.03)
    assert not [p for path in project.rglob("*.kt") for p in syntax_problems(KOTLIN, path)]


def test_android_float_model_reads_labels_beside_it_and_applies_softmax(tiny_tflites: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / 'my "odd" $model.tflite'
    model.write_bytes(tiny_tflites["unlabelled"].read_bytes())
    (tmp_path / "labels.txt").write_text("".join(f"class {i}\n" for i in range(6)))
    project = generate_demo(model, tmp_path / "app")
    spec = _check_model_spec(project, model)
    assert spec["SOURCE_MODEL"] == model.name  # escaped in Kotlin, decoded back here
    assert spec["OUTPUT_IS_PROBABILITIES"] is False and spec["LABEL_SOURCE"] == "ASSET"
    assert (project / "app/src/main/assets/labels.txt").read_text().splitlines() == [f"class {i}" for i in range(6)]
    assert not [p for path in project.rglob("*.kt") for p in syntax_problems(KOTLIN, path)]


# --- refusals: one line, non-zero exit, nothing written ------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "key", "message"),
    [
        ("android", "segmenter", "not one score per class"),
        ("android", "unlabelled", "has no labels"),
        ("ios", "tensor_input", "not an image"),
        ("ios", "no_classifier", "is not a classifier"),
    ],
)
def test_cli_refuses_models_the_demo_cannot_run(
    platform: str,
    key: str,
    message: str,
    tiny_tflites: dict[str, Path],
    tiny_mlpackages: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = (tiny_tflites | tiny_mlpackages)[key]
    code, out, err = run_demo_cli([platform, "--model", str(model), "--out", str(tmp_path / "app")], capsys)
    assert code == 1 and out == ""
    assert one_line(err) and err.startswith("shvit-demo: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "app").exists() and not leftovers(tmp_path)


def test_reader_raises_the_typed_error_for_a_non_classifier(tiny_mlpackages: dict[str, Path]) -> None:
    from mobile_demo.coreml_spec import read_coreml

    with pytest.raises(NotAnImageClassifier, match="not a classifier"):
        read_coreml(tiny_mlpackages["no_classifier"])


def test_cli_refuses_bad_model_paths(tiny_tflites: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["ios", "--model", str(tmp_path / "missing.mlpackage")], "does not exist"),
        (["android", "--model", str(tmp_path / "missing.tflite")], "does not exist"),
        (["ios", "--model", str(tiny_tflites["quantized"])], "not a Core ML package"),
        (["android", "--model", str(tmp_path)], "not a TFLite file"),
    ]
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer at all")
    cases.append((["android", "--model", str(garbage)], "not a TFLite flatbuffer"))
    for args, message in cases:
        code, _, err = run_demo_cli([*args, "--out", str(tmp_path / "app")], capsys)
        assert code == 1 and message in err and one_line(err), (args, err)
    assert not (tmp_path / "app").exists()
    with pytest.raises(DemoError, match=r"\.onnx models have no demo app"):
        generate_demo(tmp_path / "model.onnx", tmp_path / "app")


def test_cli_usage_error_for_missing_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_demo_cli(["ios", "--out", "x"], capsys)
    assert code == 2 and "--model" in err and one_line(err)


def test_existing_output_is_refused_without_force_and_only_demos_are_replaced(
    tiny_tflites: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = tiny_tflites["quantized"]
    unrelated = tmp_path / "mine"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("keep me")
    for extra in ([], ["--force"]):
        code, _, err = run_demo_cli(["android", "--model", str(model), "--out", str(unrelated), *extra], capsys)
        assert code == 1 and one_line(err)
        assert ("--force" in err) if not extra else ("not a demo written by shvit-demo" in err)
        assert (unrelated / "notes.txt").read_text() == "keep me" and sorted(p.name for p in unrelated.iterdir()) == ["notes.txt"]

    demo = tmp_path / "demo"
    code, out, _ = run_demo_cli(["android", "--model", str(model), "--out", str(demo)], capsys)
    assert code == 0 and out.strip() == str(demo) and (demo / MARKER).is_file()
    (demo / "stale.txt").write_text("from an older run")
    code, _, err = run_demo_cli(["android", "--model", str(model), "--out", str(demo)], capsys)
    assert code == 1 and "already exists" in err
    code, _, _ = run_demo_cli(["android", "--model", str(model), "--out", str(demo), "--force"], capsys)
    assert code == 0 and not (demo / "stale.txt").exists() and (demo / MARKER).is_file()
    assert not leftovers(tmp_path)


def test_output_that_contains_the_model_is_refused(tiny_tflites: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "exports" / "m.tflite"
    model.parent.mkdir()
    model.write_bytes(tiny_tflites["quantized"].read_bytes())
    with pytest.raises(DemoError, match="contains the model"):
        generate_demo(model, model.parent, force=True)
    assert model.is_file()


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failure_while_writing_leaves_nothing(
    failure: BaseException,
    tiny_tflites: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import mobile_demo.android as android

    def broken_copy(*_args: object, **_kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(android.shutil, "copyfile", broken_copy)
    out = tmp_path / "new" / "nested" / "app"
    code, _, err = run_demo_cli(["android", "--model", str(tiny_tflites["quantized"]), "--out", str(out)], capsys)
    assert code == (130 if isinstance(failure, KeyboardInterrupt) else 1) and one_line(err)
    expected = "interrupted; no partial output was left behind" if isinstance(failure, KeyboardInterrupt) else "nothing was written"
    assert expected in err and "internal error" not in err
    assert not (tmp_path / "new").exists()  # the staging folder and the parents it created are gone


def test_a_killed_run_is_cleaned_up_by_the_next(tiny_tflites: dict[str, Path], tmp_path: Path) -> None:
    """SIGKILL leaves no chance to clean up: the next run removes the dead run's staging and restores a demo caught mid-swap."""
    dead_pid = 2**22 + 12345  # above Linux's default pid_max, so no live process has it
    (tmp_path / f"{STAGING_PREFIX}{dead_pid}-abc").mkdir()
    previous = tmp_path / f"{STAGING_PREFIX}{dead_pid}-old-demo"
    previous.mkdir()
    (previous / MARKER).write_text("{}")
    generate_demo(tiny_tflites["quantized"], tmp_path / "other")
    assert not leftovers(tmp_path) and (tmp_path / "demo" / MARKER).is_file()


# --- small pieces -------------------------------------------------------------------------------------


def test_cli_help_lists_both_platforms(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_demo_cli(["--help"], capsys)
    assert code == 0 and "ios" in out and "android" in out
    code, out, _ = run_demo_cli(["ios", "--help"], capsys)
    assert code == 0 and all(flag in out for flag in ("--model", "--out", "--force", "--debug"))


def test_templates_refuse_stray_placeholders() -> None:
    from mobile_demo.render import SourceTemplate

    assert SourceTemplate("let a = @@NAME@@ // user@@example").safe_substitute(NAME="1") == "let a = 1 // user@@example"
    with pytest.raises(ValueError):
        SourceTemplate("let a = @@name@@").substitute(NAME="1")
    with pytest.raises(KeyError):
        SourceTemplate("let a = @@OTHER@@").substitute(NAME="1")


def test_compute_plan_summary_is_none_off_macos_and_aggregates_costs(tmp_path: Path) -> None:
    import sys

    from mobile_demo.compute_plan import OpPlacement, compute_plan_summary, compute_plan_unavailable_reason, summarize_ops

    if sys.platform != "darwin":
        assert "macOS" in (compute_plan_unavailable_reason() or "")
        assert compute_plan_summary(tmp_path / "any.mlpackage") is None
    summary = summarize_ops(
        [
            OpPlacement("const", "w", "unknown", None),
            OpPlacement("conv", "c1", "neural_engine", 0.6),
            OpPlacement("layer_norm", "n1", "gpu", 0.3),
            OpPlacement("softmax", "s1", "cpu", 0.1),
        ]
    )
    assert summary["ops"] == 3 and summary["ops_by_device"]["neural_engine"] == 1
    assert summary["neural_engine_cost_share"] == pytest.approx(0.6)
    assert summary["neural_engine_op_share"] == pytest.approx(1 / 3)
    assert [o["op"] for o in summary["costliest_off_neural_engine"]] == ["layer_norm", "softmax"]


def test_convert_demo_shortcut_writes_the_artifact_and_its_app(tiny, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from convert.cli.convert import main as convert_main

    out, demo = tmp_path / "exports", tmp_path / "demo-ios"
    with pytest.raises(SystemExit) as info:
        convert_main(
            [
                "--variant",
                "auto",
                "--weights",
                str(tiny.checkpoint),
                "--input-size",
                str(tiny.input_size),
                "--labels",
                str(tiny.labels_file),
                "--target",
                "coreml",
                "--out",
                str(out),
                "--demo",
                str(demo),
            ]
        )
    assert info.value.code == 0, capsys.readouterr().err
    assert (out / "shvit_custom_96px_8cls_fp16.mlpackage").is_dir() and (demo / "project.yml").is_file()
    info_swift = next(demo.rglob("ModelInfo.swift")).read_text()
    assert f"inputWidth = {tiny.input_size}" in info_swift
    stdout = capsys.readouterr().out.strip().splitlines()
    assert stdout == [str(out / "shvit_custom_96px_8cls_fp16.mlpackage"), str(demo)]
