"""``shvit-demo android``: a Compose + CameraX + LiteRT app (Gradle Kotlin DSL) specialised to one ``.tflite``."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from mobile_demo.output import MARKER, generator_name, model_record, staged_tree
from mobile_demo.render import float_literal, kotlin_string, write_rendered
from mobile_demo.tflite_spec import TFLiteFacts, read_tflite

APP_NAME = "SHViTDemo"
DISPLAY_NAME = "SHViT Demo"
PACKAGE = "com.example.shvitdemo"
AGP_VERSION = "8.7.3"
KOTLIN_VERSION = "2.0.21"
MIN_GRADLE_FOR_AGP: dict[str, str] = {"8.7": "8.9"}
"""AGP major.minor → the oldest Gradle it runs on (the compatibility table of each AGP release note;
AGP 8.7.0's gives Gradle 8.9 as minimum and default). Add the row before moving AGP_VERSION."""
GRADLE_VERSION = MIN_GRADLE_FOR_AGP[".".join(AGP_VERSION.split(".")[:2])]
"""The Gradle the generated wrapper pins: the one AGP_VERSION needs."""
COMPOSE_BOM = "2024.12.01"
CAMERAX_VERSION = "1.4.1"
LITERT_VERSION = "1.4.0"
ASSETS_DIR = "app/src/main/assets"
_SOURCE_DIR = "app/src/main/java/" + PACKAGE.replace(".", "/")
SOURCES: dict[str, str] = {
    "settings.gradle.kts": "settings.gradle.kts",
    "build.gradle.kts": "build.gradle.kts",
    "app.build.gradle.kts": "app/build.gradle.kts",
    "gradle.properties": "gradle.properties",
    "gradle-wrapper.properties": "gradle/wrapper/gradle-wrapper.properties",
    "AndroidManifest.xml": "app/src/main/AndroidManifest.xml",
    "ModelSpec.kt": f"{_SOURCE_DIR}/ModelSpec.kt",
    "Tracing.kt": f"{_SOURCE_DIR}/Tracing.kt",
    "Labels.kt": f"{_SOURCE_DIR}/Labels.kt",
    "Images.kt": f"{_SOURCE_DIR}/Images.kt",
    "ModelRunner.kt": f"{_SOURCE_DIR}/ModelRunner.kt",
    "LatencyBenchmark.kt": f"{_SOURCE_DIR}/LatencyBenchmark.kt",
    "DemoController.kt": f"{_SOURCE_DIR}/DemoController.kt",
    "CameraPane.kt": f"{_SOURCE_DIR}/CameraPane.kt",
    "MainActivity.kt": f"{_SOURCE_DIR}/MainActivity.kt",
    "README.md": "README.md",
}
"""Template name → path in the generated project."""

Log = Callable[[str], None]


def asset_name(model: Path) -> str:
    """The model's file name, restricted to characters every asset path and Kotlin literal takes as is."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", model.stem) or "model"
    return f"{stem}.tflite"


def template_values(facts: TFLiteFacts) -> dict[str, str]:
    """Every ``@@FIELD@@`` of the Android templates, from the model's facts."""
    printable_name = "".join(ch if ch.isprintable() else "?" for ch in facts.path.name)
    shape = (1, facts.height, facts.width, 3) if facts.layout == "NHWC" else (1, 3, facts.height, facts.width)
    quantised_in = facts.input_dtype != "float32"
    quantised_out = facts.output_dtype != "float32"
    embedded = facts.label_source.kind == "metadata"
    labels_note = (
        f"`{facts.label_source.name}` packed in the model's TFLite metadata"
        if embedded
        else f"`assets/labels.txt` (copied from {facts.label_source.origin})"
    )
    return {
        "APP_NAME": APP_NAME,
        "DISPLAY_NAME": DISPLAY_NAME,
        "PACKAGE": PACKAGE,
        "PACKAGE_PATH": PACKAGE.replace(".", "/"),
        "AGP_VERSION": AGP_VERSION,
        "KOTLIN_VERSION": KOTLIN_VERSION,
        "GRADLE_VERSION": GRADLE_VERSION,
        "COMPOSE_BOM": COMPOSE_BOM,
        "CAMERAX_VERSION": CAMERAX_VERSION,
        "LITERT_VERSION": LITERT_VERSION,
        "SOURCE_MODEL": kotlin_string(facts.path.name),
        "SOURCE_MODEL_NAME": printable_name,
        "SOURCE_MODEL_COMMENT": printable_name.replace("*/", "*_/"),
        "MODEL_ASSET": kotlin_string(asset_name(facts.path)),
        "INPUT_NAME": kotlin_string(facts.input_name),
        "INPUT_NAME_RAW": facts.input_name,
        "LAYOUT": facts.layout,
        "INPUT_SHAPE": "×".join(str(d) for d in shape),
        "INPUT_HEIGHT": str(facts.height),
        "INPUT_WIDTH": str(facts.width),
        "INPUT_TYPE": facts.input_dtype.upper(),
        "INPUT_TYPE_RAW": facts.input_dtype,
        "INPUT_SCALE": float_literal(facts.input_scale),
        "INPUT_ZERO_POINT": str(facts.input_zero_point),
        "INPUT_NOTE": (
            f"quantised: scale {facts.input_scale:.6g}, zero point {facts.input_zero_point}"
            if quantised_in
            else "RGB 0-255, normalisation inside the model"
        ),
        "OUTPUT_NAME": kotlin_string(facts.output_name),
        "OUTPUT_NAME_RAW": facts.output_name,
        "OUTPUT_TYPE": facts.output_dtype.upper(),
        "OUTPUT_TYPE_RAW": facts.output_dtype,
        "OUTPUT_SCALE": float_literal(facts.output_scale),
        "OUTPUT_ZERO_POINT": str(facts.output_zero_point),
        "OUTPUT_NOTE": ("probabilities (the graph ends in a softmax)" if facts.outputs_probabilities else "logits")
        + (f", quantised: scale {facts.output_scale:.6g}, zero point {facts.output_zero_point}" if quantised_out else ""),
        "SOFTMAX_NOTE": "" if facts.outputs_probabilities else "; softmax over the logits in the app",
        "NUM_CLASSES": str(facts.num_classes),
        "OUTPUT_IS_PROBABILITIES": "true" if facts.outputs_probabilities else "false",
        "LABEL_SOURCE": "MODEL_METADATA" if embedded else "ASSET",
        "LABELS_FILE": kotlin_string(facts.label_source.name),
        "LABELS_NOTE": labels_note,
        "CROP_FRACTION": float_literal(facts.crop_fraction),
        "CROP_PERCENT": f"{facts.crop_fraction * 100:g}",
    }


def generate_android(model: Path, out_dir: Path, *, force: bool = False, log: Log | None = None) -> Path:
    """Write the Android demo for ``model`` (.tflite) to ``out_dir`` atomically; returns ``out_dir``."""
    say = log or (lambda _message: None)
    facts = read_tflite(Path(model))
    values = template_values(facts)
    out_dir = Path(out_dir)
    with staged_tree(out_dir, model=facts.path, force=force) as root:
        write_rendered(root, SOURCES, "android", values)
        assets = root / ASSETS_DIR
        assets.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(facts.path, assets / asset_name(facts.path))
        if facts.label_source.kind == "file":
            (assets / facts.label_source.name).write_text("\n".join(facts.labels) + "\n", encoding="utf-8")
        (root / MARKER).write_text(json.dumps(_record(facts), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    say(
        f"✓ wrote the Android app for {facts.path.name} ({facts.layout} {facts.height}×{facts.width} {facts.input_dtype} "
        f"input, {facts.num_classes} classes, labels from {facts.label_source.origin}) to {out_dir}"
    )
    say(f"  next: open {out_dir} in Android Studio and run 'app'   (README.md has the command-line steps)")
    return out_dir


def _record(facts: TFLiteFacts) -> dict[str, object]:
    return {
        "generator": generator_name(),
        "platform": "android",
        **model_record(facts.path),
        "model_file": f"{ASSETS_DIR}/{asset_name(facts.path)}",
        "input": {
            "name": facts.input_name,
            "layout": facts.layout,
            "height": facts.height,
            "width": facts.width,
            "dtype": facts.input_dtype,
            "scale": facts.input_scale,
            "zero_point": facts.input_zero_point,
        },
        "output": {
            "name": facts.output_name,
            "dtype": facts.output_dtype,
            "classes": facts.num_classes,
            "probabilities": facts.outputs_probabilities,
        },
        "labels": {"source": facts.label_source.kind, "file": facts.label_source.name, "origin": facts.label_source.origin},
        "crop_fraction": facts.crop_fraction,
    }
