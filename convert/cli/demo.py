"""``shvit-demo``: write a ready-to-open iOS or Android demo app for an exported model."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from convert.cli.common import run_command, version_option
from convert.process import preload_coremltools

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _log(message: str) -> None:
    click.echo(message, err=True)


@click.group(
    "shvit-demo", context_settings=_CONTEXT, epilog="Example: shvit-demo ios --model exports/shvit_s3_fp16.mlpackage --out demo-ios"
)
@version_option()
def demo_group() -> None:
    """Generate a demo app for an exported SHViT model.

    The project is specialised to the model: input size, feature names, quantisation and label
    source are read from the model file itself. It is written atomically: a failure leaves nothing.
    """


_model_option = click.option("--model", "model", required=True, type=click.Path(path_type=Path), help="The exported model.")
_out_option = click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to create for the project (must not exist or be empty, unless --force).",
)
_force_option = click.option("--force", is_flag=True, help="Replace a demo folder that shvit-demo wrote before.")
_debug_option = click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")


@demo_group.command("ios", context_settings=_CONTEXT)
@_model_option
@_out_option
@_force_option
@_debug_option
def ios_command(model: Path, out_dir: Path, force: bool, debug: bool) -> int:
    """SwiftUI app for a Core ML .mlpackage or a Core AI .aimodel (XcodeGen project.yml, Instruments
    signposts, XCTest benchmarks).

    Photo picker and live camera, top-5, compute-units picker and latency median/p90; for Core ML
    also the Vision path and the Neural Engine share from MLComputePlan; Core AI apps need iOS 27.
    Open with: xcodegen generate.
    """
    from mobile_demo.generate import IOS_PLATFORMS, generate_demo, platform_of
    from mobile_demo.ios import generate_ios

    if model.suffix == ".mlpackage":
        preload_coremltools()
    if platform_of(model) in IOS_PLATFORMS:
        click.echo(str(generate_demo(model, out_dir, force=force, log=_log)))
    else:  # anything else gets the Core ML reader's one-line refusal, as before
        click.echo(str(generate_ios(model, out_dir, force=force, log=_log)))
    return 0


@demo_group.command("android", context_settings=_CONTEXT)
@_model_option
@_out_option
@_force_option
@_debug_option
def android_command(model: Path, out_dir: Path, force: bool, debug: bool) -> int:
    """Compose + CameraX app for a LiteRT .tflite (Gradle Kotlin DSL, android.os.Trace sections).

    Photo picker and live camera, top-5, CPU (XNNPACK) or GPU delegate, latency median/p90;
    float or quantised input as the model takes it. Open the folder in Android Studio.
    """
    from mobile_demo.android import generate_android
    from mobile_demo.generate import generate_demo, platform_of

    if platform_of(model) == "android":
        click.echo(str(generate_demo(model, out_dir, force=force, log=_log)))
    else:  # anything else gets the LiteRT reader's one-line refusal, as before
        click.echo(str(generate_android(model, out_dir, force=force, log=_log)))
    return 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_command(demo_group, argv))


if __name__ == "__main__":
    main()
