"""``shvit-convert``: SHViT → any registered target, checked against PyTorch after every export.

A thin layer over :func:`convert.export`: flags become its arguments, its log becomes the output.
Target choices, precisions and target-specific flags (``--min-ios``) come from the registry.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from convert import targets
from convert.cli.common import EXIT_ERROR, run_command, version_option
from convert.config import DEFAULT_CALIB_COUNT
from convert.process import preload_coremltools


class RegistryChoice(click.Choice):
    """A choice read from the target registry when the command runs, so plugin targets appear too."""

    def __init__(self, read: Callable[[], list[str]]) -> None:
        self._read = read
        super().__init__([], case_sensitive=False)

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        return self._read()

    @choices.setter
    def choices(self, _value: Any) -> None:
        pass


def _log(message: str) -> None:
    click.echo(message, err=True)


def _target_help() -> str:
    def not_installed(name: str) -> str:
        return f" (not installed: pip install 'shvit-mobile[{targets.BUILTIN[name].extra}]')" if targets.missing_toolchain(name) else ""

    return " ".join(f"{t.name}: {t.summary} [{', '.join(t.precisions)}]{not_installed(t.name)}." for t in targets.available())


def _target_option_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """One flag per target-specific option, named after it, passed on only when given."""
    for option, owners in reversed(list(targets.option_table().values())):
        kind = click.Choice(option.choices) if option.choices is not None else str
        command = click.option(
            option.flag,
            option.name,
            type=kind,
            default=None,
            help=f"{option.help} (--target {', '.join(owners)}; default {option.default})",
        )(command)
    return command


@click.command(
    "shvit-convert",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: shvit-convert --variant s3 --target coreml --weights shvit_s3.pth --out exports/",
)
@version_option()
@click.option(
    "--variant",
    required=True,
    type=click.Choice(["s1", "s2", "s3", "s4", "auto"], case_sensitive=False),
    help="SHViT size; 'auto' infers the architecture from --weights (fine-tuned or custom checkpoints).",
)
@click.option("--target", required=True, type=RegistryChoice(lambda: list(targets.names())), help=_target_help())
@click.option(
    "--precision",
    type=RegistryChoice(targets.all_precisions),
    default=None,
    help="Default: " + ", ".join(f"{t.default_precision} for {t.name}" for t in targets.available()) + ". "
    "int8-weights: 8-bit weights only. int8: weights and activations, calibrated on --calib images. "
    "Each target lists what it takes in --target's help; one that cannot make a precision says why.",
)
@click.option(
    "--weights",
    default="imagenet",
    show_default=True,
    help="Checkpoint file (.pth official, or timm .pth/.bin/.safetensors), or 'imagenet' to download "
    "the released ImageNet-1k weights once into the cache (~/.cache/shvit-mobile, or $SHVIT_CACHE_DIR).",
)
@click.option(
    "--random-init",
    is_flag=True,
    help="Use random weights instead of --weights (for trying the toolchain only). The draw is recorded in the "
    "sidecar, so shvit-check --random-init and shvit-bench can check the try-out later.",
)
@click.option("--seed", type=int, default=None, help="With --random-init: which random draw (default 0).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("exports"),
    show_default=True,
    help="Folder to write the artifact, its .json sidecar and any extra files into.",
)
@click.option(
    "--name",
    default=None,
    help="The artifact's file name (e.g. my_model or my_model.mlpackage). Default: shvit_<variant>_<precision>, "
    "plus the input size and class count when they are not the variant's own (shvit_s1_256px_10cls_fp16).",
)
@click.option(
    "--labels",
    type=click.Path(path_type=Path),
    default=None,
    help="Text file with one class label per line (for fine-tuned heads). Default: ImageNet-1k labels.",
)
@click.option(
    "--calib",
    "calib_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of images for int8 calibration (also used for the parity check unless --images is given).",
)
@click.option(
    "--calib-count",
    type=int,
    default=DEFAULT_CALIB_COUNT,
    show_default=True,
    help="How many --calib images to sample (fixed seed, spread across class sub-folders).",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of images for the parity check. Default: --calib images, else generated natural-looking images.",
)
@click.option("--input-size", type=int, default=None, help="Input resolution. Default: the variant's (224; 256 for S4).")
@_target_option_flags
@click.option(
    "--demo",
    "demo_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Also generate a demo app around the artifact into this folder (iOS for coreml, Android for tflite; same as shvit-demo).",
)
@click.option("--force", is_flag=True, help="Replace an existing artifact (atomically, once the new one is complete).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def convert_command(
    variant: str,
    target: str,
    precision: str | None,
    weights: str,
    random_init: bool,
    seed: int | None,
    out_dir: Path,
    name: str | None,
    labels: Path | None,
    calib_dir: Path | None,
    calib_count: int,
    images_dir: Path | None,
    input_size: int | None,
    demo_dir: Path | None,
    force: bool,
    debug: bool,
    **target_options: str | None,
) -> int:
    """Convert SHViT to a mobile model and check it against the PyTorch reference.

    The artifact takes RGB pixels (0-255) at the variant's input size with ImageNet normalisation
    baked in, and outputs the class logits (Core ML: class probabilities and the top label).
    After export the artifact is run in its own runtime on images and compared with PyTorch
    (max/mean |Δ|, cosine, top-1/top-5 agreement); the command fails if it is outside tolerance.
    """
    from convert.api.pipeline import export
    from convert.errors import ArgumentError, UsageError

    chosen = targets.get(target)
    if demo_dir is not None and chosen.demo_platform is None:
        from mobile_demo.generate import GENERATORS

        apps = ", ".join(
            f"an {GENERATORS[t.demo_platform][0]} app for --target {t.name}" for t in targets.available() if t.demo_platform in GENERATORS
        )
        raise ArgumentError(f"--demo builds a demo app ({apps}), not for {chosen.name}")
    if seed is not None and not random_init:
        raise UsageError("picks a random draw: it goes with --random-init", argument="seed")
    if chosen.name == "coreml":
        preload_coremltools()
    given: dict[str, Any] = {name: value for name, value in target_options.items() if value is not None}
    result = export(
        variant.lower(),
        target=chosen.name,
        precision=precision,
        weights=None if random_init else weights,
        out_dir=out_dir,
        labels=labels,
        calib=calib_dir,
        calib_count=calib_count,
        images=images_dir,
        input_size=input_size,
        force=force,
        progress=True,
        seed=seed,
        name=name,
        **given,
    )
    click.echo(str(result.path))
    if demo_dir is not None:
        from mobile_demo.generate import generate_demo

        _log(f"→ generating the demo app in {demo_dir}")
        click.echo(str(generate_demo(result.path, demo_dir, force=force)))
    return 0 if result.passed else EXIT_ERROR


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_command(convert_command, argv))


if __name__ == "__main__":
    main()
