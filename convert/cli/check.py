"""``shvit-check``: are these exported models still SHViT? A thin layer over :func:`convert.check`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from convert.cli.common import EXIT_ERROR, run_command, version_option
from convert.process import preload_coremltools
from convert.validate.checker import DEFAULT_COUNT


@click.command(
    "shvit-check",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: shvit-check exports/shvit_s3_fp16.mlpackage exports/shvit_s3_int8.tflite --variant s3 "
    "--weights shvit_s3.pth --images val/ --labels-from-folders --html report.html",
)
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@version_option()
@click.option(
    "--variant",
    required=True,
    type=click.Choice(["s1", "s2", "s3", "s4", "auto"], case_sensitive=False),
    help="SHViT size the artifacts were exported from; 'auto' infers it from --weights.",
)
@click.option(
    "--weights",
    default="imagenet",
    show_default=True,
    help="Checkpoint the artifacts were exported from, or 'imagenet' for the released weights (cached).",
)
@click.option(
    "--random-init",
    is_flag=True,
    help="The artifacts are random-weights try-outs (shvit-convert --random-init): redraw the same weights "
    "from the seed their sidecar records.",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of photos (flat or one sub-folder per class). Default: generated natural-looking images.",
)
@click.option("--labels-from-folders", is_flag=True, help="Take each image's class from its sub-folder and report accuracy.")
@click.option(
    "--labels-file",
    type=click.Path(path_type=Path),
    default=None,
    help="File mapping images to classes ('file label' per line; label = class name or index) to report accuracy.",
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The model's class names, one per line (as given to shvit-convert --labels). "
    "Default: from the artifacts' sidecars, else ImageNet-1k.",
)
@click.option(
    "--count",
    type=int,
    default=DEFAULT_COUNT,
    show_default=True,
    help="Images to use (fixed seed, spread across classes); 0 = every image in --images.",
)
@click.option(
    "--input-size", type=int, default=None, help="Input resolution. Default: the artifacts' sidecars, else the variant's (224; 256 for S4)."
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the JSON report here.")
@click.option(
    "--html", "html_path", type=click.Path(path_type=Path), default=None, help="Write a self-contained HTML report (table and chart) here."
)
@click.option(
    "--per-layer",
    is_flag=True,
    help="For int8 artifacts: every op's error against a float conversion of the reference (SQNR along the depth) "
    "and, from the export's sidecar, each op's own error; in the terminal, --json and --html (with a chart).",
)
@click.option("--threads", type=int, default=None, help="CPU threads for each runtime. Default: the runtime's own choice.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def check_command(
    artifacts: tuple[Path, ...],
    variant: str,
    weights: str,
    random_init: bool,
    images_dir: Path | None,
    labels_from_folders: bool,
    labels_file: Path | None,
    labels_path: Path | None,
    count: int,
    input_size: int | None,
    json_path: Path | None,
    html_path: Path | None,
    per_layer: bool,
    threads: int | None,
    debug: bool,
) -> int:
    """Compare exported SHViT models (.onnx, .tflite, .mlpackage, .aimodel) with the PyTorch reference.

    Each artifact runs in its own runtime in a subprocess on the same images as PyTorch: max and
    mean |Δ| of the logits, cosine, PSNR, top-1/top-5 agreement and, with labelled images, top-1/top-5
    accuracy beside PyTorch's. Exits non-zero if any artifact is outside its target/precision
    tolerance, crashes its runtime or does not match the reference's variant or input size.
    """
    from convert.api.checking import check
    from convert.validate.report import check_output_path, format_table, write_html, write_json

    for path, option in ((json_path, "--json"), (html_path, "--html")):
        if path is not None:
            check_output_path(path, option=option)
    if any(path.suffix == ".mlpackage" for path in artifacts):
        preload_coremltools()
    report = check(
        list(artifacts),
        reference=variant.lower(),
        weights=None if random_init else weights,
        images=images_dir,
        labels=labels_path,
        labels_from_folders=labels_from_folders,
        labels_file=labels_file,
        count=count,
        input_size=input_size,
        threads=threads,
        per_layer=per_layer,
        progress=True,
    )
    click.echo("\n".join(format_table(report)))
    for layers in report.per_layer:
        click.echo("")
        click.echo("\n".join(layers.table()))
    if json_path is not None:
        write_json(report, json_path)
        click.echo(f"→ wrote {json_path}", err=True)
    if html_path is not None:
        write_html(report, html_path)
        click.echo(f"→ wrote {html_path}", err=True)
    return 0 if report.passed else EXIT_ERROR


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_command(check_command, argv))


if __name__ == "__main__":
    main()
