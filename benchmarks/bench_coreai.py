"""Core AI program size: our ``.aimodel`` vs coreai-torch's plain conversion of the unfused model.

    python benchmarks/bench_coreai.py [--variant s1] [--variant s3 ...] [--weights CKPT]

For each variant, in the same run, non-constant ops of the saved assets as coreai's own
``AIModelAssetSummary.operation_distribution`` counts them (each decomposable op together with
what it expands to; a composite graph once, each call as an ``invoke``):

- plain: ``torch.export`` of the unfused model, coreai-torch's decomposition table, ``to_coreai()``
  (the library's default conversion; tensor in, logits out);
- plain + optimize: the same followed by coreai's ``AIProgram.optimize()``, to show what the graph
  rewrite buys beyond the optimiser alone;
- ours: :func:`convert.coreai.export.to_aimodel` in fp16 and fp32 (fused, pixels in with the
  normalisation built in, rewritten graph, optimised).

The target is ours ≤ 0.75 × plain. Op counts do not depend on the weights, so random weights are the
default. Export times are wall-clock on this machine, conversions only (no runtime).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import shvit
from convert.coreai.export import PRECISIONS, optimized_plain_conversion, plain_conversion, save_aimodel, to_aimodel
from convert.coreai.inspect import facts

TARGET_RATIO = 0.75
SHOWN_OPS = 12


def bench_variant(variant: str, *, weights: str | None, tmp: Path) -> dict[str, object]:
    model = shvit.create_model(variant, weights=weights)
    size = model.config.img_size
    deploy = shvit.reparameterize(model)
    labels = [f"class_{i}" for i in range(model.config.num_classes)]
    row: dict[str, object] = {"variant": variant, "size": size}
    for name, convert in (("plain", plain_conversion), ("plain+optimize", optimized_plain_conversion)):
        started = time.perf_counter()
        asset = convert(model, size).save_asset(tmp / f"{variant}_{name}.aimodel")
        row[name] = facts(asset.path) | {"seconds": time.perf_counter() - started}
    for precision in PRECISIONS:
        started = time.perf_counter()
        exported = to_aimodel(deploy, input_size=size, labels=labels, precision=precision,
                              metadata={"variant": variant, "weights_sha256": "none (random initialisation)"})
        path = save_aimodel(exported, tmp / f"{variant}_{precision}.aimodel")
        row[precision] = facts(path) | {"seconds": time.perf_counter() - started}
    return row


def _histogram_line(histogram: dict[str, int]) -> str:
    ranked = sorted(((op, n) for op, n in histogram.items() if op != "constant"), key=lambda kv: -kv[1])
    shown = ", ".join(f"{op} {n}" for op, n in ranked[:SHOWN_OPS])
    rest = sum(n for _, n in ranked[SHOWN_OPS:])
    return f"{shown}, {len(ranked) - SHOWN_OPS} others {rest}" if rest else shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(shvit.VARIANTS), help="repeatable; default s1 and s3")
    parser.add_argument("--weights", default=None, help="checkpoint file (default: random weights; counts do not depend on them)")
    args = parser.parse_args()
    variants = args.variant or ["s1", "s3"]
    if args.weights and len(variants) > 1:
        parser.error("--weights goes with exactly one --variant")
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-coreai-") as tmp:
        for variant in variants:
            row = bench_variant(variant, weights=args.weights, tmp=Path(tmp))
            plain, optimized = row["plain"]["ops"], row["plain+optimize"]["ops"]  # type: ignore[index]
            print(f"SHViT-{variant.upper()} at {row['size']}px (non-constant ops, coreai asset summary)")
            for name in ("plain", "plain+optimize", *PRECISIONS):
                record = row[name]
                ops = record["ops"]  # type: ignore[index]
                ratio = ops / plain
                mark = ""
                if name in PRECISIONS:
                    ok = ratio <= TARGET_RATIO
                    failed |= not ok
                    mark = f" {'✓' if ok else '✗'} target ≤ {TARGET_RATIO}; vs plain+optimize {ops / optimized:.3f}"
                print(f"  {name:15s} {ops:5d} ops, ratio {ratio:.3f}{mark}  ({record['seconds']:.1f} s)")  # type: ignore[index]
                print(f"    {_histogram_line(record['op_histogram'])}")  # type: ignore[index]
            graph = row["fp16"]["graph_ops"]  # type: ignore[index]
            print(f"  ours (fp16) main graph as written: {sum(graph.values())} ops; "
                  + ", ".join(f"{op} {n}" for op, n in sorted(graph.items(), key=lambda kv: -kv[1])))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
