"""``shvit-demo ios``: a SwiftUI app (XcodeGen project) specialised to one Core ML package."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from mobile_demo.coreml_spec import CoreMLFacts, read_coreml
from mobile_demo.output import MARKER, generator_name, model_record, staged_tree
from mobile_demo.render import float_literal, swift_string, write_rendered

APP_NAME = "SHViTDemo"
DISPLAY_NAME = "SHViT Demo"
BUNDLE_ID_PREFIX = "com.example"
BUNDLE_ID = f"{BUNDLE_ID_PREFIX}.shvitdemo"
CAMERA_USAGE = "The camera feeds live frames to the on-device classifier."
PHOTOS_USAGE = "Photos you pick are classified on the device; nothing leaves it."
APP_DIR = APP_NAME
TESTS_DIR = f"{APP_NAME}Tests"
SOURCES: dict[str, str] = {
    "App.swift": f"{APP_DIR}/{APP_NAME}App.swift",
    "ModelInfo.swift": f"{APP_DIR}/ModelInfo.swift",
    "Signposts.swift": f"{APP_DIR}/Signposts.swift",
    "Preprocessing.swift": f"{APP_DIR}/Preprocessing.swift",
    "Classifier.swift": f"{APP_DIR}/Classifier.swift",
    "AppModel.swift": f"{APP_DIR}/AppModel.swift",
    "CameraFeed.swift": f"{APP_DIR}/CameraFeed.swift",
    "CameraPreview.swift": f"{APP_DIR}/CameraPreview.swift",
    "ContentView.swift": f"{APP_DIR}/ContentView.swift",
    "LatencyBenchmark.swift": f"{APP_DIR}/LatencyBenchmark.swift",
    "LatencyView.swift": f"{APP_DIR}/LatencyView.swift",
    "LatencyStats.swift": f"{APP_DIR}/LatencyStats.swift",
    "ComputePlanView.swift": f"{APP_DIR}/ComputePlanView.swift",
    "Tests.swift": f"{TESTS_DIR}/{TESTS_DIR}.swift",
    "Info.plist": f"{APP_DIR}/Info.plist",
    "project.yml": "project.yml",
    "README.md": "README.md",
}
"""Template name → path in the generated project."""
_APP_TYPES = frozenset(
    {
        APP_NAME,
        f"{APP_NAME}App",
        "AppModel",
        "CameraFeed",
        "CameraPreview",
        "Classifier",
        "ComputePlanView",
        "ContentView",
        "LatencyBenchmark",
        "LatencyView",
        "StatsRows",
        "ModelInfo",
        "Signposts",
        "Preprocessing",
        "Prediction",
        "TestImage",
        "LatencyStats",
    }
)
_SWIFT_KEYWORDS = frozenset(
    {
        "class",
        "deinit",
        "enum",
        "extension",
        "func",
        "import",
        "init",
        "let",
        "protocol",
        "struct",
        "subscript",
        "typealias",
        "var",
        "break",
        "case",
        "continue",
        "default",
        "do",
        "else",
        "for",
        "if",
        "in",
        "return",
        "switch",
        "where",
        "while",
        "as",
        "is",
        "nil",
        "self",
        "super",
        "throw",
        "throws",
        "true",
        "false",
        "try",
        "Any",
        "Self",
    }
)

Log = Callable[[str], None]


def model_class_name(stem: str) -> str:
    """The Swift class Xcode generates for a model file: the file name must be a valid, free identifier."""
    name = re.sub(r"\W", "_", stem, flags=re.ASCII) or "Model"
    if name[0].isdigit():
        name = f"Model_{name}"
    if name in _APP_TYPES or name in _SWIFT_KEYWORDS:
        name = f"{name}Model"
    return name


def app_values(model: Path) -> dict[str, str]:
    """The ``@@FIELD@@`` values every iOS app shares (names, bundle id, privacy texts, the source model's name).

    The Core ML and Core AI apps are one app around two frameworks: they share these and the
    model-independent templates (app entry, camera, preprocessing helpers, Info.plist).
    """
    return {
        "APP_NAME": APP_NAME,
        "DISPLAY_NAME": DISPLAY_NAME,
        "BUNDLE_ID": BUNDLE_ID,
        "BUNDLE_ID_PREFIX": BUNDLE_ID_PREFIX,
        "BUNDLE_ID_LITERAL": swift_string(BUNDLE_ID),
        "CAMERA_USAGE": CAMERA_USAGE,
        "PHOTOS_USAGE": PHOTOS_USAGE,
        "SOURCE_MODEL": swift_string(model.name),
        "SOURCE_MODEL_NAME": "".join(ch if ch.isprintable() else "?" for ch in model.name),
    }


def template_values(facts: CoreMLFacts) -> dict[str, str]:
    """Every ``@@FIELD@@`` of the iOS templates, from the model's facts."""
    model_class = model_class_name(facts.path.stem)
    return {
        **app_values(facts.path),
        "MIN_IOS": f"{facts.min_ios}.0",
        "MODEL_CLASS": model_class,
        "MODEL_FILE": f"{model_class}.mlpackage",
        "INPUT_NAME": swift_string(facts.input_name),
        "INPUT_NAME_RAW": facts.input_name,
        "INPUT_WIDTH": str(facts.width),
        "INPUT_HEIGHT": str(facts.height),
        "COLOR_SPACE": swift_string(facts.color_space),
        "COLOR_SPACE_RAW": facts.color_space,
        "LABEL_OUTPUT": swift_string(facts.label_output),
        "LABEL_OUTPUT_RAW": facts.label_output,
        "PROBS_OUTPUT": swift_string(facts.probabilities_output),
        "PROBS_OUTPUT_RAW": facts.probabilities_output,
        "CLASS_COUNT": str(facts.num_classes),
        "CROP_FRACTION": float_literal(facts.crop_fraction),
        "CROP_PERCENT": f"{facts.crop_fraction * 100:g}",
        "DESCRIPTION": markdown_cell(facts.metadata.get("short_description", "(none in the package)")),
    }


def markdown_cell(text: str) -> str:
    """``text`` on one line with ``|`` escaped, to sit in a Markdown table cell of a generated README."""
    return " ".join(text.split()).replace("|", "\\|")


def write_project(
    out_dir: Path,
    *,
    model: Path,
    force: bool,
    platform: str,
    templates: dict[str, dict[str, str]],
    values: dict[str, str],
    record: dict[str, object],
) -> None:
    """Render ``templates`` (template folder → template name → output path), copy ``model`` to
    ``Models/<values["MODEL_FILE"]>`` and write the :data:`MARKER` (``record`` plus the generator,
    ``platform`` and model paths), all in one staged tree that replaces ``out_dir`` only when complete."""
    model_file = f"Models/{values['MODEL_FILE']}"
    marker = {"generator": generator_name(), "platform": platform, **model_record(model), "model_file": model_file, **record}
    with staged_tree(out_dir, model=model, force=force) as root:
        for folder, files in templates.items():
            write_rendered(root, files, folder, values)
        shutil.copytree(model, root / model_file)
        (root / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def next_step(out_dir: Path, note: str) -> str:
    """The line that tells how to open a generated iOS project."""
    return f"  next: cd {out_dir} && xcodegen generate && open {APP_NAME}.xcodeproj   ({note})"


def generate_ios(model: Path, out_dir: Path, *, force: bool = False, log: Log | None = None) -> Path:
    """Write the iOS demo for ``model`` (.mlpackage) to ``out_dir`` atomically; returns ``out_dir``."""
    say = log or (lambda _message: None)
    facts = read_coreml(Path(model))
    values = template_values(facts)
    out_dir = Path(out_dir)
    write_project(out_dir, model=facts.path, force=force, platform="ios", templates={"ios": SOURCES}, values=values, record=_record(facts))
    say(
        f"✓ wrote the iOS app for {facts.path.name} ({facts.width}×{facts.height} {facts.color_space} input "
        f"{facts.input_name!r}, {facts.num_classes} classes) to {out_dir}"
    )
    say(next_step(out_dir, "README.md has the manual fallback"))
    return out_dir


def _record(facts: CoreMLFacts) -> dict[str, object]:
    return {
        "input": {"name": facts.input_name, "width": facts.width, "height": facts.height, "color_space": facts.color_space},
        "outputs": {"label": facts.label_output, "probabilities": facts.probabilities_output},
        "classes": facts.num_classes,
        "crop_fraction": facts.crop_fraction,
        "min_ios": facts.min_ios,
        "spec_version": facts.spec_version,
    }
