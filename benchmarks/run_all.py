"""Benchmark SHViT S1–S4 on every target in one run (ours and the plain baselines), via shvit-bench.

    python benchmarks/run_all.py [--calib DIR] [--images DIR --labels-from-folders] [--random-init] [shvit-bench options]

Defaults: the released ImageNet weights, ONNX fp32, TFLite fp32/fp16/int8-weights, Core ML fp16 and
int8-weights, plus TFLite and Core ML int8 when --calib is given; 1 thread, 50 timed runs after 10
warm-up; results in bench-results/ (bench.csv, bench.json, bench.png). Any other option is passed to
shvit-bench unchanged (see shvit-bench --help).
"""

from __future__ import annotations

import argparse
import sys

from convert.cli.bench import main as bench_main

VARIANTS = "s1,s2,s3,s4"
FLOAT_TARGETS = ("onnx", "tflite", "tflite:fp16", "tflite:int8-weights", "coreml", "coreml:int8-weights")
CALIBRATED_TARGETS = ("tflite:int8", "coreml:int8")


def arguments(argv: list[str]) -> list[str]:
    """shvit-bench's command line for the full sweep; user options come last and win."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--calib")
    parser.add_argument("--variant", default=VARIANTS)
    parser.add_argument("--out", default="bench-results")
    known, rest = parser.parse_known_args(argv)
    targets = FLOAT_TARGETS + (CALIBRATED_TARGETS if known.calib else ())
    args = ["--variant", known.variant, "--out", known.out]
    if "--target" not in rest:
        for target in targets:
            args += ["--target", target]
    if known.calib:
        args += ["--calib", known.calib]
    return args + rest


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    bench_main(arguments(sys.argv[1:]))


if __name__ == "__main__":
    main()
