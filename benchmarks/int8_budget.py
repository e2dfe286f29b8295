"""Where int8 accuracy goes on image-dependent SHViT: weights and activations quantised one at a time.

    python benchmarks/int8_budget.py [--variant s1] [--held 128]

The same model, seeds and held-out images as ``bench_int8.py``. Each row simulates one kind of int8 in
PyTorch (fake quantisation of the deploy model, everything else float32) and reports top-1 agreement
and per-image cosine against the float model. It separates what no converter setting can change
(activation resolution along the depth) from what a converter chooses (which weights stay float), so a
failed int8 target can be traced to its cause rather than to a quantiser.

* weights: per-output-channel symmetric int8, round to nearest (what TFLite and coremltools do);
* activations: the input of every 1x1 convolution and of the classifier, asymmetric 8 bit with a range
  taken per image: per tensor (what one static range can at best give), per pixel (a range per input
  row, as XNNPACK's dynamic-range kernels quantise), or per channel (the best any per-channel
  smoothing, such as SmoothQuant's, could approach without changing the int8 kernels).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable

import torch
from bench_int8 import HELD_SEED, image_dependent  # this folder is on sys.path when the script runs
from torch import nn

import calib
from convert.int8.report import quality

Quantiser = Callable[[torch.Tensor], torch.Tensor]


def int8_weights(w: torch.Tensor) -> torch.Tensor:
    scale = (w.abs().flatten(1).amax(1).clamp(min=1e-12) / 127).view(-1, *[1] * (w.dim() - 1))
    return torch.round(w / scale).clamp(-127, 127) * scale


def _uint8(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    lo = x.amin(dims, keepdim=True).clamp(max=0)
    hi = x.amax(dims, keepdim=True).clamp(min=0)
    scale = (hi - lo).clamp(min=1e-12) / 255
    return torch.round((x - lo) / scale) * scale + lo


def per_tensor(x: torch.Tensor) -> torch.Tensor:
    return _uint8(x, tuple(range(1, x.dim())))


def per_pixel(x: torch.Tensor) -> torch.Tensor:
    return _uint8(x, (1,))


def per_channel(x: torch.Tensor) -> torch.Tensor:
    return _uint8(x, tuple(range(2, x.dim()))) if x.dim() > 2 else per_tensor(x)


def _pointwise(layer: nn.Module) -> bool:
    return isinstance(layer, nn.Linear) or (isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and layer.groups == 1)


def simulated(deploy: nn.Module, *, weights: str | None, activations: Quantiser | None) -> nn.Module:
    """``weights``: None, ``"all"`` or ``"pointwise"`` (spatial convolutions float, as TFLite's int8-weights)."""
    model = copy.deepcopy(deploy)
    for layer in model.modules():
        if not isinstance(layer, (nn.Conv2d, nn.Linear)):
            continue
        if weights == "all" or (weights == "pointwise" and _pointwise(layer)):
            with torch.no_grad():
                layer.weight.copy_(int8_weights(layer.weight))
        if activations is not None and _pointwise(layer):
            layer.register_forward_pre_hook(lambda _m, inputs, fq=activations: (fq(inputs[0]),))
    return model


ROWS: tuple[tuple[str, str | None, Quantiser | None], ...] = (
    ("int8 weights, all", "all", None),
    ("int8 weights, 1x1 convs and classifier", "pointwise", None),
    ("activations per tensor per image", None, per_tensor),
    ("activations per pixel", None, per_pixel),
    ("activations per channel per image", None, per_channel),
    ("both: pointwise weights + per-tensor activations", "pointwise", per_tensor),
    ("both: pointwise weights + per-pixel activations", "pointwise", per_pixel),
    ("both: pointwise weights + per-channel activations", "pointwise", per_channel),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="s1")
    parser.add_argument("--held", type=int, default=128)
    args = parser.parse_args()
    model, deploy, size = image_dependent(args.variant)
    held = torch.from_numpy(calib.normalize(calib.synthetic_images(args.held, size, seed=HELD_SEED)))
    with torch.no_grad():
        reference = model(held).numpy()
    print(f"{args.variant}, {args.held} held-out images; simulated int8, everything else float32")
    print(f"{'what is int8':50} {'top-1':>6} {'min cos':>8} {'mean cos':>9}")
    for name, weights, activations in ROWS:
        with torch.no_grad():
            logits = simulated(deploy, weights=weights, activations=activations)(held).numpy()
        q = quality(reference, logits)
        print(f"{name:50} {q.top1:6.1%} {q.min_cosine:8.4f} {q.mean_cosine:9.4f}")


if __name__ == "__main__":
    main()
