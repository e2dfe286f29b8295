"""Core ML program size: our classifier package vs a plain ``ct.convert`` of the traced fused model.

    python benchmarks/bench_coreml.py [--variant s3] [--variant s1 ...] [--weights CKPT] [--calib DIR]

For each variant, in the same run: non-const MIL ops (ops run per prediction: ``const`` and the
load-time ``constexpr_*`` weight decompression excluded) of the plain conversion (deploy model,
``torch.jit.trace``, ``TensorType`` input, iOS 16, fp16) and of our fp16 package (image input,
classifier head included), their ratio (target ≤ 0.75), and the package size per precision.
Op counts do not depend on the weights, so random weights (with nonzero BN scales, so that
sizes are those of a real checkpoint) are the default; ``int8`` (W8A8) calibrates on ``--calib``
images, else on generated ones.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import calib
import shvit
from convert.coreml.export import export_coreml, non_const_op_count, op_counts, plain_conversion
from convert.coreml.graph import CoreMLClassifierGraph
from convert.coreml.rules import PRECISIONS, resolve_min_ios
from convert.int8.engine import PLAIN_FULL_INT8
from convert.labels import imagenet_labels

TARGET_RATIO = 0.75
CALIB_COUNT = 16


class LogitsOnly(nn.Module):
    """Our graph behind the plain conversion's interface (tensor in, logits out): a like-for-like count."""

    def __init__(self, deploy: nn.Module) -> None:
        super().__init__()
        self.classifier = CoreMLClassifierGraph(deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)[1]


def tensor_conversion_ops(module: nn.Module, size: int) -> dict[str, int]:
    """Op counts of coremltools' default conversion of ``module`` (TensorType input, iOS 16, fp16)."""
    return op_counts(plain_conversion(module, size).get_spec())


@torch.no_grad()
def nonzero_residual_branches(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Fresh SHViTs have zero-initialised BN scales, so whole weight tensors fuse to zeros and
    compress unrealistically well; give every BN a nonzero affine so sizes match real checkpoints."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.weight.copy_(torch.rand(module.num_features, generator=generator) * 0.2 + 0.05)
            module.bias.copy_(torch.rand(module.num_features, generator=generator) * 0.2 - 0.1)
    return model


def bench_variant(variant: str, *, weights: str | None, calib_dir: Path | None, tmp: Path) -> dict[str, object]:
    model = shvit.create_model(variant, weights=weights)
    if weights is None:
        nonzero_residual_branches(model)
    size = shvit.VARIANTS[variant].config.img_size
    deploy = shvit.reparameterize(model)
    labels = imagenet_labels() if model.config.num_classes == 1000 else [f"class_{i}" for i in range(model.config.num_classes)]
    started = time.perf_counter()
    plain = tensor_conversion_ops(deploy, size)
    graph = tensor_conversion_ops(LogitsOnly(deploy), size)
    row: dict[str, object] = {
        "variant": variant,
        "plain_ops": non_const_op_count(plain),
        "plain_counts": plain,
        "graph_ops": non_const_op_count(graph),
        "sizes": {},
    }
    if calib_dir is not None:
        pixels = calib.load_folder(calib_dir, size=size, count=CALIB_COUNT).pixels
    else:
        pixels = calib.synthetic_images(CALIB_COUNT, size, seed=0)
    for precision in PRECISIONS:
        result = export_coreml(
            deploy,
            tmp / f"{variant}_{precision}.mlpackage",
            input_size=size,
            labels=labels,
            precision=precision,
            min_ios=resolve_min_ios(precision, "auto"),
            calib_pixels=pixels if precision == "int8" else None,
            int8=PLAIN_FULL_INT8,  # every op W8A8: the size and op figures of the full conversion
        )
        row["sizes"][precision] = result.size_bytes  # type: ignore[index]
        row[f"{precision}_ops"] = result.non_const_ops
        if precision == "fp16":
            row["ours_counts"] = result.op_counts
    row["seconds"] = time.perf_counter() - started
    return row


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(counts.items(), key=lambda kv: -kv[1]) if op != "const")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(shvit.VARIANTS), help="repeatable; default s3")
    parser.add_argument("--weights", default=None, help="checkpoint file (default: random weights; counts do not depend on them)")
    parser.add_argument("--calib", type=Path, default=None, help="images for the W8A8 row (default: generated)")
    args = parser.parse_args()
    variants = args.variant or ["s3"]
    if args.weights and len(variants) > 1:
        parser.error("--weights goes with exactly one --variant")
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-coreml-") as tmp:
        for variant in variants:
            row = bench_variant(variant, weights=args.weights, calib_dir=args.calib, tmp=Path(tmp))
            ratio = row["fp16_ops"] / row["plain_ops"]  # type: ignore[operator]
            ok = ratio <= TARGET_RATIO
            failed |= not ok
            print(f"SHViT-{variant.upper()} ({row['seconds']:.0f} s)")
            graph_ratio = row["graph_ops"] / row["plain_ops"]  # type: ignore[operator]
            print(
                f"  non-const MIL ops: plain ct.convert {row['plain_ops']}; our package (image in, classifier out) "
                f"{row['fp16_ops']}, ratio {ratio:.3f} ({'✓' if ok else '✗'} target ≤ {TARGET_RATIO}); "
                f"our graph alone (tensor in, logits out, like the plain one) {row['graph_ops']}, ratio {graph_ratio:.3f}"
            )
            print(f"    plain: {_counts_line(row['plain_counts'])}")  # type: ignore[arg-type]
            print(f"    ours:  {_counts_line(row['ours_counts'])}")  # type: ignore[arg-type]
            per_precision = ", ".join(
                f"{p} {row['sizes'][p] / 1e6:.1f} MB ({row[f'{p}_ops']} ops)"
                for p in PRECISIONS  # type: ignore[index]
            )
            print(f"  package size: {per_precision}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
