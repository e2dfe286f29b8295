"""``shvit-convert``: SHViT → ONNX / Core ML / TFLite, checked against PyTorch after every export."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from convert.cliutil import EXIT_ERROR, run_command
from convert.config import DEFAULT_CALIB_COUNT, DEFAULT_MIN_IOS, MIN_IOS_CHOICES, PRECISIONS, TARGETS, ExportConfig

_ALL_PRECISIONS = sorted({p for ps in PRECISIONS.values() for p in ps})


def _log(message: str) -> None:
    click.echo(message, err=True)


@click.command(
    "shvit-convert",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: shvit-convert --variant s3 --target coreml --weights shvit_s3.pth --out exports/",
)
@click.option("--variant", required=True, type=click.Choice(["s1", "s2", "s3", "s4", "auto"], case_sensitive=False),
              help="SHViT size; 'auto' infers the architecture from --weights (fine-tuned or custom checkpoints).")
@click.option("--target", required=True, type=click.Choice(TARGETS, case_sensitive=False),
              help="onnx: NCHW float model for ONNX Runtime. coreml: .mlpackage classifier for iOS/macOS. "
                   "tflite: NHWC model for Android (LiteRT).")
@click.option("--precision", type=click.Choice(_ALL_PRECISIONS), default=None,
              help="Default: fp16 for coreml, fp32 otherwise. int8-weights: 8-bit weights only. "
                   "int8: weights and activations, calibrated on --calib images.")
@click.option("--weights", default="imagenet", show_default=True,
              help="Checkpoint file (.pth official, or timm .pth/.bin/.safetensors), or 'imagenet' to download "
                   "the released ImageNet-1k weights once into the cache (~/.cache/shvit-mobile, or $SHVIT_CACHE_DIR).")
@click.option("--random-init", is_flag=True, help="Use random weights instead of --weights (for trying the toolchain only).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("exports"), show_default=True,
              help="Folder to write the artifact, its .json sidecar and any extra files into.")
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="Text file with one class label per line (for fine-tuned heads). Default: ImageNet-1k labels.")
@click.option("--calib", "calib_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of images for int8 calibration (also used for the parity check unless --images is given).")
@click.option("--calib-count", type=int, default=DEFAULT_CALIB_COUNT, show_default=True,
              help="How many --calib images to sample (fixed seed, spread across class sub-folders).")
@click.option("--images", "images_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of images for the parity check. Default: --calib images, else generated natural-looking images.")
@click.option("--input-size", type=int, default=None, help="Input resolution. Default: the variant's (224; 256 for S4).")
@click.option("--min-ios", type=click.Choice(MIN_IOS_CHOICES), default=DEFAULT_MIN_IOS, show_default=True,
              help="Core ML deployment target. auto: iOS 16, or iOS 17 for --precision int8 (W8A8 needs iOS 17+).")
@click.option("--demo", "demo_dir", type=click.Path(path_type=Path), default=None,
              help="Also generate a demo app around the artifact into this folder (iOS for coreml, Android for tflite; "
                   "same as shvit-demo).")
@click.option("--force", is_flag=True, help="Replace an existing artifact (atomically, once the new one is complete).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def convert_command(
    variant: str, target: str, precision: str | None, weights: str, random_init: bool, out_dir: Path,
    labels: Path | None, calib_dir: Path | None, calib_count: int, images_dir: Path | None,
    input_size: int | None, min_ios: str, demo_dir: Path | None, force: bool, debug: bool,
) -> int:
    """Convert SHViT to a mobile model and check it against the PyTorch reference.

    The artifact takes RGB pixels (0-255) at the variant's input size with ImageNet normalisation
    baked in, and outputs the class logits (Core ML: class probabilities and the top label).
    After export the artifact is run in its own runtime on images and compared with PyTorch
    (max/mean |Δ|, cosine, top-1/top-5 agreement); the command fails if it is outside tolerance.
    """
    from convert.errors import ConvertError
    from convert.pipeline import run_export

    if demo_dir is not None and target.lower() == "onnx":
        raise ConvertError("--demo builds an iOS app for --target coreml or an Android app for --target tflite, not for onnx")
    config = ExportConfig(
        variant=variant.lower(), target=target.lower(), out_dir=out_dir, precision=precision or "",
        weights=None if random_init else weights, input_size=input_size or 0, labels=labels,
        calib_dir=calib_dir, calib_count=calib_count, min_ios=min_ios, force=force,
    )
    outcome = run_export(config, images_dir=images_dir, random_init=random_init, log=_log)
    click.echo(str(outcome.artifact))
    if demo_dir is not None:
        from mobile_demo.generate import generate_demo

        _log(f"→ generating the demo app in {demo_dir}")
        click.echo(str(generate_demo(outcome.artifact, demo_dir, force=force, log=_log)))
    return 0 if outcome.passed else EXIT_ERROR


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_command(convert_command, argv))


if __name__ == "__main__":
    main()
