"""Semantics of the MIL ops SHViT's Core ML programs use, as the ML Program spec defines them.

Each op takes its named inputs (torch tensors for tensors, Python values for scalars, strings and
lists) and returns its output(s) computed in float32; rounding to the declared output type (fp16
emulation) is the executor's job. Ops run on a batch of images at once: when an op would have to
touch axis 0 (the batch axis the program declares as 1), it raises :class:`NotBatchable` and the
executor runs that program image by image instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Args = dict[str, Any]
OpFn = Callable[[Args, "OpContext"], Any]

OPS: dict[str, OpFn] = {}


class NotBatchable(Exception):
    """An op needs axis 0, so the program must run on one image at a time."""


class OpContext:
    """What an op may need besides its inputs: whether axis 0 is a batch of several images."""

    def __init__(self, *, batched: bool) -> None:
        self.batched = batched

    def axis(self, axis: int, rank: int) -> int:
        resolved = axis + rank if axis < 0 else axis
        if not 0 <= resolved < rank:
            raise ValueError(f"axis {axis} out of range for rank {rank}")
        if self.batched and resolved == 0:
            raise NotBatchable
        return resolved

    def axes(self, axes: Any, rank: int) -> list[int]:
        return [self.axis(int(a), rank) for a in _as_list(axes)]


def op(*names: str) -> Callable[[OpFn], OpFn]:
    def register(fn: OpFn) -> OpFn:
        for name in names:
            OPS[name] = fn
        return fn

    return register


def _as_list(value: Any) -> list:
    if isinstance(value, torch.Tensor):
        return value.reshape(-1).tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.reshape(-1)[0].item()
    if isinstance(value, (list, tuple)):
        return value[0]
    return value


# ----------------------------------------------------------------------------------------------
# elementwise


_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "real_div": torch.div,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "pow": torch.pow,
}


def _binary(name: str) -> OpFn:
    fn = _BINARY[name]
    return lambda a, ctx: fn(a["x"].float(), a["y"].float())


for _name in _BINARY:
    OPS[_name] = _binary(_name)


@op("relu")
def _relu(a: Args, ctx: OpContext) -> torch.Tensor:
    return torch.relu(a["x"])


@op("relu6")
def _relu6(a: Args, ctx: OpContext) -> torch.Tensor:
    return torch.clamp(a["x"], 0.0, 6.0)


@op("sigmoid")
def _sigmoid(a: Args, ctx: OpContext) -> torch.Tensor:
    return torch.sigmoid(a["x"])


@op("tanh")
def _tanh(a: Args, ctx: OpContext) -> torch.Tensor:
    return torch.tanh(a["x"])


@op("exp")
def _exp(a: Args, ctx: OpContext) -> torch.Tensor:
    return torch.exp(a["x"])


@op("sqrt")
def _sqrt(a: Args, ctx: OpContext) -> torch.Tensor:
    return torch.sqrt(a["x"])


@op("rsqrt")
def _rsqrt(a: Args, ctx: OpContext) -> torch.Tensor:
    return torch.rsqrt(a["x"] + float(_scalar(a.get("epsilon", 1e-12))))


@op("square")
def _square(a: Args, ctx: OpContext) -> torch.Tensor:
    return a["x"] * a["x"]


@op("abs")
def _abs(a: Args, ctx: OpContext) -> torch.Tensor:
    return torch.abs(a["x"])


@op("clip")
def _clip(a: Args, ctx: OpContext) -> torch.Tensor:
    return torch.clamp(a["x"], float(_scalar(a["alpha"])), float(_scalar(a["beta"])))


@op("cast")
def _cast(a: Args, ctx: OpContext) -> torch.Tensor:
    dtype = str(_scalar(a["dtype"]))
    x = a["x"]
    if dtype in ("fp16", "fp32", "fp64"):
        return x.float()
    if dtype == "bool":
        return x != 0
    if dtype in ("int8", "uint8", "int16", "uint16", "int32", "int64", "uint32"):
        return torch.trunc(x.double()).to(torch.int64)
    raise ValueError(f"cast to {dtype!r} is not supported")


# ----------------------------------------------------------------------------------------------
# linear algebra and convolution


@op("linear")
def _linear(a: Args, ctx: OpContext) -> torch.Tensor:
    return F.linear(a["x"], a["weight"], a.get("bias"))


@op("matmul")
def _matmul(a: Args, ctx: OpContext) -> torch.Tensor:
    x, y = a["x"], a["y"]
    if bool(_scalar(a.get("transpose_x", False))) and x.dim() >= 2:
        x = x.transpose(-1, -2)
    if bool(_scalar(a.get("transpose_y", False))) and y.dim() >= 2:
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


def _same_pads(size: int, kernel: int, stride: int, dilation: int, *, lower: bool) -> tuple[int, int]:
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


@op("conv")
def _conv(a: Args, ctx: OpContext) -> torch.Tensor:
    x, weight, bias = a["x"], a["weight"], a.get("bias")
    dims = x.dim() - 2
    if dims not in (1, 2, 3):
        raise ValueError(f"conv on a rank-{x.dim()} input is not supported")
    strides = [int(s) for s in _as_list(a.get("strides", [1] * dims))]
    dilations = [int(d) for d in _as_list(a.get("dilations", [1] * dims))]
    groups = int(_scalar(a.get("groups", 1)))
    pad_type = str(_scalar(a.get("pad_type", "valid")))
    kernel = weight.shape[2:]
    if pad_type == "custom":
        flat = [int(p) for p in _as_list(a["pad"])]
        pads = [(flat[2 * i], flat[2 * i + 1]) for i in range(dims)]
    elif pad_type == "valid":
        pads = [(0, 0)] * dims
    elif pad_type in ("same", "same_lower"):
        pads = [_same_pads(x.shape[2 + i], kernel[i], strides[i], dilations[i], lower=pad_type == "same_lower") for i in range(dims)]
    else:
        raise ValueError(f"conv pad_type {pad_type!r} is not supported")
    if any(p for pair in pads for p in pair):
        x = F.pad(x, [p for pair in reversed(pads) for p in pair])
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    return conv(x, weight, bias, stride=strides, dilation=dilations, groups=groups)


# ----------------------------------------------------------------------------------------------
# reductions and normalisation


def _reduce(fn: Callable[..., torch.Tensor]) -> OpFn:
    def run(a: Args, ctx: OpContext) -> torch.Tensor:
        x = a["x"]
        axes = a.get("axes")
        axes = ctx.axes(axes, x.dim()) if axes is not None else ctx.axes(list(range(x.dim())), x.dim())
        keep = bool(_scalar(a.get("keep_dims", False)))
        return fn(x, dim=axes, keepdim=keep)

    return run


OPS["reduce_mean"] = _reduce(torch.mean)
OPS["reduce_sum"] = _reduce(torch.sum)
OPS["reduce_max"] = _reduce(torch.amax)
OPS["reduce_min"] = _reduce(torch.amin)


@op("softmax")
def _softmax(a: Args, ctx: OpContext) -> torch.Tensor:
    x = a["x"]
    return torch.softmax(x, dim=ctx.axis(int(_scalar(a.get("axis", -1))), x.dim()))


def _broadcast_over(param: torch.Tensor, axes: list[int], rank: int) -> torch.Tensor:
    """A parameter shaped like ``x.shape[axes]`` reshaped to broadcast against ``x``."""
    shape = [1] * rank
    for size, axis in zip(param.shape, sorted(axes)):
        shape[axis] = size
    return param.reshape(shape)


@op("layer_norm")
def _layer_norm(a: Args, ctx: OpContext) -> torch.Tensor:
    x = a["x"]
    axes = ctx.axes(a["axes"], x.dim()) if a.get("axes") is not None else ctx.axes(list(range(x.dim())), x.dim())
    eps = float(_scalar(a.get("epsilon", 1e-5)))
    mean = x.mean(dim=axes, keepdim=True)
    centred = x - mean
    y = centred / torch.sqrt((centred * centred).mean(dim=axes, keepdim=True) + eps)
    if a.get("gamma") is not None:
        y = y * _broadcast_over(a["gamma"], axes, x.dim())
    if a.get("beta") is not None:
        y = y + _broadcast_over(a["beta"], axes, x.dim())
    return y


@op("instance_norm")
def _instance_norm(a: Args, ctx: OpContext) -> torch.Tensor:
    x = a["x"]
    axes = list(range(2, x.dim()))
    eps = float(_scalar(a.get("epsilon", 1e-5)))
    centred = x - x.mean(dim=axes, keepdim=True)
    y = centred / torch.sqrt((centred * centred).mean(dim=axes, keepdim=True) + eps)
    channel = [1, -1] + [1] * (x.dim() - 2)
    if a.get("gamma") is not None:
        y = y * a["gamma"].reshape(channel)
    if a.get("beta") is not None:
        y = y + a["beta"].reshape(channel)
    return y


@op("batch_norm")
def _batch_norm(a: Args, ctx: OpContext) -> torch.Tensor:
    x = a["x"]
    channel = [1, -1] + [1] * (x.dim() - 2)
    eps = float(_scalar(a.get("epsilon", 1e-5)))
    y = (x - a["mean"].reshape(channel)) / torch.sqrt(a["variance"].reshape(channel) + eps)
    if a.get("gamma") is not None:
        y = y * a["gamma"].reshape(channel)
    if a.get("beta") is not None:
        y = y + a["beta"].reshape(channel)
    return y


# ----------------------------------------------------------------------------------------------
# shape ops


@op("reshape")
def _reshape(a: Args, ctx: OpContext) -> torch.Tensor:
    x = a["x"]
    shape = [int(s) for s in _as_list(a["shape"])]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]  # iOS 17: 0 copies the dim
    if ctx.batched:
        rest = x[0].numel()
        tail = shape[1:]
        known = math.prod(s for s in tail if s != -1)
        if shape[0] != 1 or tail.count(-1) > 1 or (-1 not in tail and known != rest) or (known == 0 or rest % known):
            raise NotBatchable
        shape = [x.shape[0], *tail]
    return x.reshape(shape)


@op("transpose")
def _transpose(a: Args, ctx: OpContext) -> torch.Tensor:
    x = a["x"]
    perm = [int(p) + x.dim() if int(p) < 0 else int(p) for p in _as_list(a["perm"])]
    if ctx.batched and perm[0] != 0:
        raise NotBatchable
    return x.permute(perm)


@op("split")
def _split(a: Args, ctx: OpContext) -> tuple[torch.Tensor, ...]:
    x = a["x"]
    axis = ctx.axis(int(_scalar(a["axis"])), x.dim())
    if a.get("split_sizes") is not None:
        sizes = [int(s) for s in _as_list(a["split_sizes"])]
        return tuple(torch.split(x, sizes, dim=axis))
    count = int(_scalar(a["num_splits"]))
    return tuple(torch.chunk(x, count, dim=axis))


@op("concat")
def _concat(a: Args, ctx: OpContext) -> torch.Tensor:
    values = a["values"]
    if bool(_scalar(a.get("interleave", False))):
        raise ValueError("concat with interleave=True is not supported")
    axis = ctx.axis(int(_scalar(a["axis"])), values[0].dim())
    return torch.cat([v.float() for v in values], dim=axis)


@op("squeeze")
def _squeeze(a: Args, ctx: OpContext) -> torch.Tensor:
    x = a["x"]
    if a.get("axes") is None:
        if ctx.batched:
            raise NotBatchable
        return x.squeeze()
    axes = sorted(ctx.axes(a["axes"], x.dim()), reverse=True)
    for axis in axes:
        x = x.squeeze(axis)
    return x


@op("expand_dims")
def _expand_dims(a: Args, ctx: OpContext) -> torch.Tensor:
    x = a["x"]
    rank = x.dim() + len(_as_list(a["axes"]))
    for axis in sorted(ctx.axes(a["axes"], rank)):
        x = x.unsqueeze(axis)
    return x


@op("slice_by_index")
def _slice_by_index(a: Args, ctx: OpContext) -> torch.Tensor:
    x = a["x"]
    rank = x.dim()
    begin = [int(v) for v in _as_list(a["begin"])]
    end = [int(v) for v in _as_list(a["end"])]
    stride = [int(v) for v in _as_list(a.get("stride", [1] * rank))]
    begin_mask = [bool(v) for v in _as_list(a.get("begin_mask", [False] * rank))]
    end_mask = [bool(v) for v in _as_list(a.get("end_mask", [False] * rank))]
    squeeze = [bool(v) for v in _as_list(a.get("squeeze_mask", [False] * rank))]
    index = []
    for i in range(rank):
        full = begin_mask[i] and end_mask[i] and stride[i] == 1
        if ctx.batched and i == 0 and not full:
            raise NotBatchable
        start = None if begin_mask[i] else begin[i]
        stop = None if end_mask[i] else end[i]
        index.append(start if squeeze[i] else slice(start, stop, stride[i]))
    if any(s < 0 for s in stride):
        raise ValueError("slice_by_index with negative strides is not supported")
    return x[tuple(index)]


# ----------------------------------------------------------------------------------------------
# quantisation (iOS 16 constexpr, iOS 17 activation quantisation, iOS 18 blockwise)

_INT_RANGES: dict[str, tuple[int, int]] = {"int8": (-128, 127), "uint8": (0, 255)}


def _per_axis(param: Any, rank: int, axis: Any) -> torch.Tensor:
    """A scalar or per-axis vector (scale / zero point) reshaped to broadcast along ``axis``."""
    t = param if isinstance(param, torch.Tensor) else torch.tensor(param)
    t = t.float()
    if t.dim() == 0 or t.numel() == 1:
        return t.reshape([])
    shape = [1] * rank
    resolved = int(_scalar(axis))
    shape[resolved + rank if resolved < 0 else resolved] = t.numel()
    return t.reshape(shape)


@op("quantize")
def _quantize(a: Args, ctx: OpContext) -> torch.Tensor:
    x = a["input"].float()
    dtype = str(_scalar(a["output_dtype"]))
    if dtype not in _INT_RANGES:
        raise ValueError(f"quantize to {dtype!r} is not supported")
    scale = _per_axis(a["scale"], x.dim(), a.get("axis"))
    zero = _per_axis(a["zero_point"], x.dim(), a.get("axis")) if a.get("zero_point") is not None else 0.0
    low, high = _INT_RANGES[dtype]
    return torch.clamp(torch.round(x / scale) + zero, low, high)


@op("dequantize")
def _dequantize(a: Args, ctx: OpContext) -> torch.Tensor:
    q = a["input"].float()
    scale = _per_axis(a["scale"], q.dim(), a.get("axis"))
    zero = _per_axis(a["zero_point"], q.dim(), a.get("axis")) if a.get("zero_point") is not None else 0.0
    return (q - zero) * scale


@op("constexpr_affine_dequantize")
def _constexpr_affine_dequantize(a: Args, ctx: OpContext) -> torch.Tensor:
    q = a["quantized_data"].float()
    scale = _per_axis(a["scale"], q.dim(), a["axis"])
    zero = _per_axis(a["zero_point"], q.dim(), a["axis"])
    return (q - zero) * scale


def _expand_blocks(param: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    out = param.float()
    for axis, (size, blocks) in enumerate(zip(shape, param.shape)):
        if size != blocks:
            out = out.repeat_interleave(size // blocks, dim=axis)
    return out


@op("constexpr_blockwise_shift_scale")
def _constexpr_blockwise_shift_scale(a: Args, ctx: OpContext) -> torch.Tensor:
    data = a["data"].float()
    out = data
    if a.get("offset") is not None:
        out = out - _expand_blocks(a["offset"], data.shape)
    return out * _expand_blocks(a["scale"], data.shape)


# ----------------------------------------------------------------------------------------------
# classifier head


@op("classify")
def _classify(a: Args, ctx: OpContext) -> tuple[list, torch.Tensor]:
    probs = a["probabilities"].float()
    classes = list(a["classes"])
    flat = probs.reshape(-1, probs.shape[-1])
    labels = [classes[int(i)] for i in flat.argmax(dim=1)]
    return labels, probs
