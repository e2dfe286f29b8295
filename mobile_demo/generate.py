"""One entry point for both platforms, chosen by the model's suffix (``shvit-convert --demo`` uses it)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mobile_demo.errors import DemoError

PLATFORM_BY_SUFFIX: dict[str, str] = {".mlpackage": "ios", ".tflite": "android"}


def generate_demo(model_path: Path, out_dir: Path, *, force: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Write the iOS app for a ``.mlpackage`` or the Android app for a ``.tflite`` to ``out_dir``."""
    model_path = Path(model_path)
    platform = PLATFORM_BY_SUFFIX.get(model_path.suffix.lower())
    if platform == "ios":
        from mobile_demo.ios import generate_ios

        return generate_ios(model_path, Path(out_dir), force=force, log=log)
    if platform == "android":
        from mobile_demo.android import generate_android

        return generate_android(model_path, Path(out_dir), force=force, log=log)
    raise DemoError(
        f"no demo app for {model_path.name}: pass a .mlpackage (iOS app) or a .tflite (Android app); "
        ".onnx models have no demo app"
    )
