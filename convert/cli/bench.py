"""``shvit-bench``: one run that shows every export (and the plain baselines), or the artifacts a user
already has, with its size, parity, accuracy and host latency next to the PyTorch reference."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from convert.bench.latency import DEFAULT_ROUNDS, effective_rounds
from convert.bench.output import draw_chart, format_table, write_csv, write_json
from convert.bench.run import (
    BUILT,
    DEFAULT_COUNT,
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    BenchSettings,
    bench_artifacts,
    default_targets,
    run_bench,
)
from convert.cli.common import EXIT_ERROR, run_command, version_option
from convert.config import DEFAULT_CALIB_COUNT
from convert.errors import UsageError
from convert.process import preload_coremltools

EXPORT_ONLY = {"targets": "target", "calib_dir": "calib", "calib_count": "calib_count", "reexport": "reexport"}
"""Parameters that say what to export (and their flags' names): meaningless, so refused, with artifact paths
(``--baselines`` is not: it is on by default, and given artifacts simply have no plain baselines to convert)."""


def _split(values: tuple[str, ...]) -> list[str]:
    """``--variant s1,s2 --variant s3`` → [s1, s2, s3]."""
    return [v.strip().lower() for value in values for v in value.split(",") if v.strip()]


@click.command(
    "shvit-bench",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Examples: shvit-bench --variant s1,s3 --target onnx --target tflite --target tflite:int8 --calib photos/ "
    "--images val/ --labels-from-folders --out bench/ ; shvit-bench exports/shvit_s1_fp32.tflite exports/shvit_s1_fp32.onnx",
)
@version_option()
@click.argument("artifacts", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--variant",
    "variants",
    multiple=True,
    help="SHViT size(s) to benchmark: s1, s2, s3, s4 (repeat or comma-separate), or 'auto' with --weights PATH. "
    "With ARTIFACTS: the one variant they were exported from (default: their sidecars').",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    default=default_targets(),
    show_default=True,
    help="TARGET[:PRECISION] to export and time, e.g. tflite:int8 (repeatable). PyTorch is always the reference. Not with ARTIFACTS.",
)
@click.option(
    "--weights",
    default=None,
    show_default="imagenet",
    help="'imagenet' (released weights, per variant, cached) or a checkpoint PATH (one variant only). "
    "With ARTIFACTS: default their sidecars'.",
)
@click.option("--random-init", is_flag=True, help="Random weights (latency and toolchain only; parity on them proves little).")
@click.option("--labels", type=click.Path(path_type=Path), default=None, help="Class names file for a fine-tuned head.")
@click.option(
    "--images",
    "images_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Photos for parity and accuracy. Default: generated natural-looking images (agreement only).",
)
@click.option("--labels-from-folders", is_flag=True, help="Report top-1/top-5 accuracy using --images' class sub-folders.")
@click.option("--labels-file", type=click.Path(path_type=Path), default=None, help="File mapping --images files to classes.")
@click.option("--count", type=int, default=DEFAULT_COUNT, show_default=True, help="Images for parity/accuracy (0 = all of --images).")
@click.option("--calib", "calib_dir", type=click.Path(path_type=Path), default=None, help="Calibration photos for int8 targets.")
@click.option("--calib-count", type=int, default=DEFAULT_CALIB_COUNT, show_default=True, help="Calibration images to sample.")
@click.option("--input-size", type=int, default=None, help="Input resolution. Default: each variant's (224; 256 for S4).")
@click.option("--runs", type=int, default=DEFAULT_RUNS, show_default=True, help="Timed runs per model (after warm-up).")
@click.option("--warmup", type=int, default=DEFAULT_WARMUP, show_default=True, help="Untimed warm-up runs per model.")
@click.option(
    "--rounds",
    type=int,
    default=DEFAULT_ROUNDS,
    show_default=True,
    help="Interleaved rounds the runs are split into (at most --runs): every model of a variant takes its turn each "
    "round, so load on a shared machine hits all alike; speed-ups are per-round ratios.",
)
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads for every runtime.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("bench-results"),
    show_default=True,
    help="Folder for exports/ and bench.csv, bench.json, bench.png.",
)
@click.option("--reexport", is_flag=True, help="Export again even when an identical earlier export is in --out.")
@click.option(
    "--baselines/--no-baselines",
    default=True,
    show_default=True,
    help="Also convert and time the plain Core ML/TFLite conversions ours are measured against.",
)
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def bench_command(
    artifacts: tuple[Path, ...],
    variants: tuple[str, ...],
    targets: tuple[str, ...],
    weights: str | None,
    random_init: bool,
    labels: Path | None,
    images_dir: Path | None,
    labels_from_folders: bool,
    labels_file: Path | None,
    count: int,
    calib_dir: Path | None,
    calib_count: int,
    input_size: int | None,
    runs: int,
    warmup: int,
    rounds: int,
    threads: int,
    out_dir: Path,
    reexport: bool,
    baselines: bool,
    debug: bool,
) -> int:
    """Benchmark SHViT exports: status, parity, accuracy, size and host latency per target.

    For each variant and TARGET[:PRECISION]: exports through the shvit-convert pipeline (reusing an
    identical earlier export in --out), checks every artifact against PyTorch on the same images as
    shvit-check, and times each in the runtime that will run it (ONNX Runtime, LiteRT/XNNPACK,
    PyTorch eager for the reference; Core ML only on macOS). Given ARTIFACTS instead, nothing is
    exported: each is checked and timed against the reference its sidecar names (as shvit-check;
    --variant/--weights/--random-init override it), one reference per variant and input size.
    All models of a variant are timed together in interleaved rounds. Writes bench.csv, bench.json
    and a speed–accuracy chart bench.png. Exits non-zero if any of our exports fails or misses its tolerance.
    """
    names = _split(variants)
    chosen = None if random_init else weights if artifacts else weights or "imagenet"  # given artifacts: None = their sidecars'
    settings = BenchSettings(
        out_dir=out_dir,
        weights=chosen,
        runs=runs,
        warmup=warmup,
        rounds=rounds,
        threads=threads,
        input_size=input_size,
        labels=labels,
        calib_dir=calib_dir,
        calib_count=calib_count,
        reexport=reexport,
        baselines=baselines,
        progress=True,
    )
    if any(path.suffix == ".mlpackage" for path in artifacts) or (not artifacts and any("coreml" in t for t in targets)):
        preload_coremltools()
    if artifacts:
        context = click.get_current_context()
        given = [flag for name, flag in EXPORT_ONLY.items() if context.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)]
        if given:
            raise UsageError(
                "says what to export, and with artifact paths nothing is exported: drop it, or drop the artifacts to export and time",
                argument=given[0],
            )
        if len(names) > 1:
            raise UsageError(
                "with artifact paths, it names the one variant they were exported from: "
                "benchmark other variants' artifacts by their sidecars",
                argument="variant",
            )
        result = bench_artifacts(
            list(artifacts),
            settings=settings,
            variant=names[0] if names else None,
            random_init=random_init,
            images_dir=images_dir,
            labels_from_folders=labels_from_folders,
            labels_file=labels_file,
            count=count,
        )
    else:
        result = run_bench(
            names,
            _split(targets),
            settings=settings,
            random_init=random_init,
            images_dir=images_dir,
            labels_from_folders=labels_from_folders,
            labels_file=labels_file,
            count=count,
        )
    done = effective_rounds(rounds, runs)
    click.echo(
        f"Host: {result.host}; batch 1, {threads} thread(s), min/median/p90/max of {runs} runs after {warmup} warm-up, "
        f"in {done} interleaved round{'s' if done != 1 else ''}; speed-up: median (range) of per-round ratios"
    )
    click.echo("\n".join(format_table(result.rows, labelled=result.labelled)))
    write_csv(result.rows, out_dir / "bench.csv")
    write_json(result.rows, out_dir / "bench.json", settings=result.settings, host=result.host)
    draw_chart(result.rows, out_dir / "bench.png", labelled=result.labelled, host=result.host, threads=threads)
    click.echo(f"Wrote {out_dir / 'bench.csv'}, {out_dir / 'bench.json'}, {out_dir / 'bench.png'}")
    if result.failed:
        click.echo(
            "✗ "
            + "; ".join(f"SHViT-{r.variant.upper()} {r.name}: {r.export if r.export not in BUILT else r.parity}" for r in result.failed),
            err=True,
        )
        return EXIT_ERROR
    return 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_command(bench_command, argv))


if __name__ == "__main__":
    main()
