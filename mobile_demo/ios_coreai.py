"""``shvit-demo ios --model X.aimodel``: the SwiftUI app around Apple's Core AI framework (iOS 27).

Same app as the Core ML one (:mod:`mobile_demo.ios`) where Core AI offers the same: photo picker
and live camera, top-5, a compute-unit preference, latency median/p90, signposts and XCTest
benchmarks. Core AI has no Vision classifier path, so the app resizes, crops and packs the
float32 RGB tensor itself and applies the softmax to the logits.
"""

from __future__ import annotations

from pathlib import Path

from mobile_demo.coreai_spec import CoreAIFacts, read_coreai
from mobile_demo.ios import APP_DIR, SOURCES, TESTS_DIR, Log, app_values, markdown_cell, model_class_name, next_step, write_project
from mobile_demo.render import float_literal, swift_string

PLATFORM = "ios-coreai"
XCODE_VERSION = "27.0"
"""The first Xcode with the iOS 27 SDK, the first SDK with Core AI (Xcode 27.0 beta at WWDC26)."""
SHARED_SOURCES: dict[str, str] = {
    name: SOURCES[name]
    for name in (
        "App.swift",
        "CameraFeed.swift",
        "CameraPreview.swift",
        "Preprocessing.swift",
        "LatencyStats.swift",
        "Info.plist",
    )
}
"""Templates of the Core ML app the Core AI app uses as they are (they do not touch the model)."""
COREAI_SOURCES: dict[str, str] = {
    "ModelInfo.swift": f"{APP_DIR}/ModelInfo.swift",
    "Labels.swift": f"{APP_DIR}/Labels.swift",
    "Signposts.swift": f"{APP_DIR}/Signposts.swift",
    "ImageTensor.swift": f"{APP_DIR}/ImageTensor.swift",
    "Classifier.swift": f"{APP_DIR}/Classifier.swift",
    "AppModel.swift": f"{APP_DIR}/AppModel.swift",
    "ContentView.swift": f"{APP_DIR}/ContentView.swift",
    "LatencyBenchmark.swift": f"{APP_DIR}/LatencyBenchmark.swift",
    "LatencyView.swift": f"{APP_DIR}/LatencyView.swift",
    "Tests.swift": f"{TESTS_DIR}/{TESTS_DIR}.swift",
    "project.yml": "project.yml",
    "README.md": "README.md",
}
"""Core AI template name → path in the generated project."""


def template_values(facts: CoreAIFacts) -> dict[str, str]:
    """Every ``@@FIELD@@`` of the Core AI templates (and of the shared iOS ones), from the asset's facts."""
    resource = model_class_name(facts.path.stem)
    return {
        **app_values(facts.path),
        "MIN_IOS": f"{facts.min_ios}.0",
        "XCODE_VERSION": XCODE_VERSION,
        "MODEL_RESOURCE": swift_string(resource),
        "MODEL_FILE": f"{resource}.aimodel",
        "FUNCTION_NAME": swift_string(facts.function_name),
        "FUNCTION_NAME_RAW": facts.function_name,
        "INPUT_NAME": swift_string(facts.input_name),
        "INPUT_NAME_RAW": facts.input_name,
        "OUTPUT_NAME": swift_string(facts.output_name),
        "OUTPUT_NAME_RAW": facts.output_name,
        "INPUT_SIZE": str(facts.input_size),
        "CLASS_COUNT": str(facts.num_classes),
        "LABELS": "\n".join(f"        {swift_string(label)}," for label in facts.labels),
        "CROP_FRACTION": float_literal(facts.crop_fraction),
        "CROP_PERCENT": f"{facts.crop_fraction * 100:g}",
        "RESIZE_TO": str(int(facts.input_size / facts.crop_fraction)),
        "PRECISION": swift_string(facts.precision),
        "PRECISION_RAW": facts.precision,
        "DESCRIPTION": markdown_cell(facts.description or "(none in the asset)"),
    }


def generate_ios_coreai(model: Path, out_dir: Path, *, force: bool = False, log: Log | None = None) -> Path:
    """Write the Core AI iOS demo for ``model`` (.aimodel) to ``out_dir`` atomically; returns ``out_dir``."""
    say = log or (lambda _message: None)
    facts = read_coreai(Path(model))
    values = template_values(facts)
    out_dir = Path(out_dir)
    write_project(
        out_dir,
        model=facts.path,
        force=force,
        platform=PLATFORM,
        templates={"ios": SHARED_SOURCES, PLATFORM: COREAI_SOURCES},
        values=values,
        record=_record(facts),
    )
    say(
        f"✓ wrote the Core AI iOS app for {facts.path.name} ({facts.input_size}×{facts.input_size} float32 RGB input "
        f"{facts.input_name!r}, {facts.num_classes} classes, iOS {facts.min_ios}) to {out_dir}"
    )
    say(next_step(out_dir, f"Xcode {XCODE_VERSION} or later; README.md has the steps"))
    return out_dir


def _record(facts: CoreAIFacts) -> dict[str, object]:
    return {
        "function": facts.function_name,
        "input": {"name": facts.input_name, "shape": [1, 3, facts.input_size, facts.input_size], "dtype": "float32", "range": "RGB 0-255"},
        "output": {"name": facts.output_name, "classes": facts.num_classes},
        "crop_fraction": facts.crop_fraction,
        "min_ios": facts.min_ios,
        "precision": facts.precision,
    }
