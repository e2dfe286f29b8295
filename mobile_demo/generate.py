"""One entry point for both platforms, chosen by the target that wrote the model (``shvit-convert --demo`` uses it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from convert import targets
from convert.errors import ArgumentError
from mobile_demo.errors import DemoError
from mobile_demo.output import random_weights_warning

GENERATORS: dict[str, tuple[str, str]] = {
    "ios": ("iOS", "mobile_demo.ios:generate_ios"),
    "ios-coreai": ("iOS (Core AI)", "mobile_demo.ios_coreai:generate_ios_coreai"),
    "android": ("Android", "mobile_demo.android:generate_android"),
}
"""Demo platform (a target's ``demo_platform``) → its display name and generator."""
IOS_PLATFORMS: frozenset[str] = frozenset({"ios", "ios-coreai"})
"""The platforms ``shvit-demo ios`` writes: a Core ML or a Core AI app, by the model's suffix."""


def platform_of(model_path: Path) -> str | None:
    """The demo platform of the target whose suffix ``model_path`` has, or None for an unknown suffix."""
    try:
        return targets.for_path(model_path).demo_platform
    except ArgumentError:
        return None


def generate_demo(model_path: Path, out_dir: Path, *, force: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Write the demo app of the platform ``model_path``'s target declares (iOS for ``.mlpackage``, iOS with Core AI for ``.aimodel``, Android for ``.tflite``)."""
    import importlib

    model_path = Path(model_path)
    platform = platform_of(model_path)
    if platform not in GENERATORS:
        apps = [f"a {t.suffix} ({GENERATORS[t.demo_platform][0]} app)" for t in targets.available() if t.demo_platform in GENERATORS]
        others = [t.suffix for t in targets.available() if t.demo_platform not in GENERATORS]
        raise DemoError(f"no demo app for {model_path.name}: pass {' or '.join(apps)}; {', '.join(others)} models have no demo app")
    warning = random_weights_warning(model_path)
    if warning and log is not None:
        log(warning)
    module, function = GENERATORS[platform][1].split(":")
    return getattr(importlib.import_module(module), function)(model_path, Path(out_dir), force=force, log=log)
