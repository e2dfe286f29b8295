"""A toy export target, registered from outside the toolkit: the fused model's weights in an ``.npz``, run by NumPy.

It exists to show that a target is one module plus one registry call: export, check, bench and
the Python API take it with no edit anywhere else. The "runtime" is a NumPy forward pass of the
tiny SHViT configuration the tests use (stem, blocks, attention and head written out in NumPy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from convert import targets
from convert.parity import Tolerance
from convert.targets import ArtifactFacts, ExportContext, TargetOption

NPZ_FP32 = Tolerance(max_rel=1e-4)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: int = 1, groups: int = 1) -> np.ndarray:
    """NCHW convolution with 'same'-style padding of k // 2 (all SHViT convolutions are 1x1 or 3x3)."""
    n, c, h, width = x.shape
    out_c, in_per_group, k, _ = w.shape
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (width + 2 * pad - k) // stride + 1
    cols = np.empty((n, c, k, k, oh, ow), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
    out_per_group = out_c // groups
    outs = []
    for g in range(groups):
        patch = cols[:, g * in_per_group : (g + 1) * in_per_group].reshape(n, in_per_group * k * k, oh * ow)
        weight = w[g * out_per_group : (g + 1) * out_per_group].reshape(out_per_group, -1)
        outs.append(np.einsum("ok,nkp->nop", weight, patch))
    y = np.concatenate(outs, 1).reshape(n, out_c, oh, ow)
    return y if b is None else y + b[None, :, None, None]


class NumpyProgram:
    """The fused network as named NumPy operations, replayed module by module."""

    def __init__(self, arrays: dict[str, np.ndarray], program: list[dict[str, Any]]) -> None:
        self.arrays, self.program = arrays, program

    def __call__(self, x: np.ndarray) -> np.ndarray:
        values = {"input": x}
        for op in self.program:
            values[op["out"]] = getattr(self, "_" + op["op"])(values, op)
        return values[self.program[-1]["out"]]

    def _w(self, op: dict[str, Any], key: str) -> np.ndarray | None:
        name = op.get(key)
        return None if name is None else self.arrays[name]

    def _conv(self, v: dict, op: dict) -> np.ndarray:
        return _conv(v[op["in"]], self._w(op, "weight"), self._w(op, "bias"), stride=op["stride"], groups=op["groups"])

    def _relu(self, v: dict, op: dict) -> np.ndarray:
        return np.maximum(v[op["in"]], 0)

    def _add(self, v: dict, op: dict) -> np.ndarray:
        return v[op["a"]] + v[op["b"]]

    def _sub_const(self, v: dict, op: dict) -> np.ndarray:
        return v[op["in"]] - self.arrays[op["const"]]

    def _se(self, v: dict, op: dict) -> np.ndarray:
        x = v[op["in"]]
        s = x.mean((2, 3), keepdims=True)
        s = np.maximum(_conv(s, self._w(op, "w1"), self._w(op, "b1")), 0)
        s = _conv(s, self._w(op, "w2"), self._w(op, "b2"))
        return x / (1 + np.exp(-s))

    def _shsa(self, v: dict, op: dict) -> np.ndarray:
        x = v[op["in"]]
        b, _c, h, w = x.shape
        p, qk = op["pdim"], op["qk"]
        x1, x2 = x[:, :p], x[:, p:]
        mean = x1.mean((1, 2, 3), keepdims=True)
        var = ((x1 - mean) ** 2).mean((1, 2, 3), keepdims=True)
        x1 = (x1 - mean) / np.sqrt(var + op["eps"])
        qkv = _conv(x1, self._w(op, "qkv_w"), self._w(op, "qkv_b")).reshape(b, -1, h * w)
        q, k, val = qkv[:, :qk], qkv[:, qk : 2 * qk], qkv[:, 2 * qk :]
        logits = np.einsum("bcn,bcm->bnm", q, k)
        attn = np.exp(logits - logits.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        x1 = np.einsum("bcm,bnm->bcn", val, attn).reshape(b, p, h, w)
        y = np.maximum(np.concatenate([x1, x2], 1), 0)
        return _conv(y, self._w(op, "proj_w"), self._w(op, "proj_b"))

    def _head(self, v: dict, op: dict) -> np.ndarray:
        pooled = v[op["in"]].mean((2, 3))
        return pooled @ self.arrays[op["weight"]].T + self.arrays[op["bias"]]


def trace_program(pixel_model: Any) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """The pixel-input deploy model as (arrays, program), walking its modules in order."""
    from torch import nn

    from shvit.layers import SHSADeploy

    arrays: dict[str, np.ndarray] = {}
    program: list[dict[str, Any]] = []

    def keep(name: str, tensor: Any) -> str:
        arrays[name] = tensor.detach().numpy().astype(np.float32)
        return name

    def emit(op: str, source: str, **fields: Any) -> str:
        out = f"v{len(program)}"
        program.append({"op": op, "in": source, "out": out, **fields})
        return out

    def walk(module: nn.Module, prefix: str, source: str) -> str:
        from shvit.layers import Residual

        if isinstance(module, nn.Conv2d):
            return emit(
                "conv",
                source,
                weight=keep(prefix + ".w", module.weight),
                bias=keep(prefix + ".b", module.bias) if module.bias is not None else None,
                stride=module.stride[0],
                groups=module.groups,
            )
        if isinstance(module, nn.ReLU):
            return emit("relu", source)
        if isinstance(module, nn.Identity):
            return source
        if isinstance(module, Residual):
            inner = walk(module.m, prefix + ".m", source)
            out = f"v{len(program)}"
            program.append({"op": "add", "a": source, "b": inner, "out": out})
            return out
        if isinstance(module, SHSADeploy):
            conv, proj = module.qkv, module.proj[-1]
            return emit(
                "shsa",
                source,
                pdim=module.pdim,
                qk=module.qk_dim,
                eps=module.eps,
                qkv_w=keep(prefix + ".qkv.w", conv.weight),
                qkv_b=keep(prefix + ".qkv.b", conv.bias),
                proj_w=keep(prefix + ".proj.w", proj.weight),
                proj_b=keep(prefix + ".proj.b", proj.bias),
            )
        if type(module).__name__ == "SqueezeExcite":
            return emit(
                "se",
                source,
                w1=keep(prefix + ".w1", module.fc1.weight),
                b1=keep(prefix + ".b1", module.fc1.bias),
                w2=keep(prefix + ".w2", module.fc2.weight),
                b2=keep(prefix + ".b2", module.fc2.bias),
            )
        if type(module).__name__ == "PatchMerging":  # one ReLU module used twice: the order is forward()'s
            for name in ("conv1", "act", "conv2", "act", "se", "conv3"):
                source = walk(getattr(module, name), f"{prefix}.{name}", source)
            return source
        children = list(module.named_children())
        if not children:
            raise TypeError(f"the toy target cannot run {type(module).__name__} at {prefix}")
        for name, child in children:
            source = walk(child, f"{prefix}.{name}", source)
        return source

    model = pixel_model.model
    x = emit("sub_const", "input", const=keep("pixel_mean", pixel_model.pixel_mean))
    for part in ("patch_embed", "blocks1", "blocks2", "blocks3"):
        x = walk(getattr(model, part), part, x)
    emit("head", x, weight=keep("head.w", model.head.weight), bias=keep("head.b", model.head.bias))
    return arrays, program


class NpzTarget:
    name = "npz"
    suffix = ".npz"
    bundle = False
    summary = "NumPy arrays and a program (a toy target for tests)"
    precisions = ("fp32",)
    default_precision = "fp32"
    calibrated: frozenset[str] = frozenset()
    unavailable: dict[str, str] = {}
    tolerances = {"fp32": NPZ_FP32}
    options = (TargetOption("layout", ("nchw",), "nchw", "Tensor layout of the program (toy target)."),)
    demo_platform = None

    def resolve_options(self, precision: str, given: dict[str, Any]) -> dict[str, Any]:
        return {"layout": given.get("layout") or "nchw"}

    def extra_files(self, stem: str) -> list[str]:
        return []

    def export(self, context: ExportContext, staging: Any) -> dict[str, Any]:
        arrays, program = trace_program(context.source.pixel_model)
        meta = {"program": program, "input_size": context.input_size, "classes": context.source.labels}
        with open(staging.path(context.stem + self.suffix), "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)
        context.log(f"  {len(program)} NumPy ops")
        return {"ops": len(program)}

    def _load(self, path: Path) -> tuple[NumpyProgram, dict[str, Any]]:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
            meta = json.loads(str(data["__meta__"]))
        return NumpyProgram(arrays, meta["program"]), meta

    def run(self, path: Path, pixels: np.ndarray) -> tuple[np.ndarray, str]:
        program, meta = self._load(path)
        if pixels.shape[1] != meta["input_size"]:
            raise ValueError(f"model takes {meta['input_size']} px images, got {pixels.shape[1]}")
        x = pixels.astype(np.float32).transpose(0, 3, 1, 2)
        return np.concatenate([program(x[i : i + 1]) for i in range(len(x))]), f"NumPy {np.__version__}"

    def inspect(self, path: Path) -> ArtifactFacts:
        _, meta = self._load(path)
        return ArtifactFacts(input_size=meta["input_size"], num_classes=len(meta["classes"]), precision="fp32", ops=len(meta["program"]))

    def timer(self, path: Path, pixels: np.ndarray, *, threads: int) -> tuple[Any, str]:
        program, _ = self._load(path)
        x = pixels.astype(np.float32).transpose(0, 3, 1, 2)
        return (lambda: program(x)), f"NumPy {np.__version__}"

    def latency_unavailable(self) -> str | None:
        return None


TARGET = NpzTarget()


def register() -> None:
    """Make the toy target known (idempotent): the test registers it, and so does a runtime child that imports this module."""
    if TARGET.name not in targets.names():
        targets.register(TARGET)


register()
