"""The deploy model rewritten into the shapes coreai-torch lowers to the fewest Core AI ops.

Starts from :class:`shvit.PixelInput` (mean subtracted first, ``1 / (255 std)`` folded into the
stem weights: exact, see there) and from the Core ML lessons in :mod:`convert.coreml.graph`
(GroupNorm as a ``layer_norm`` over (C, H, W) without affine, the affine and the attention scale
already folded into qkv; the partial-channel cut as one ``split``; one reshape of qkv to tokens
before its split). What differs for Core AI, each measured on the asset's op statistics:

- Core AI's ``batch_matmul`` has no transpose flags, so attention is computed transposed:
  ``softmax over keys (k^T q)`` is ``attn^T``, which ``v @ attn^T`` needs as is. One transpose per
  attention block (``k^T``) instead of two;
- a ``reduce_mean`` lowers to about 17 ops (shape queries, casts, a divide), a ``reduce_sum`` to
  about 3: the squeeze-excite and head poolings are sums, with ``1 / (H W)`` folded into the
  weights of the layer that follows (fc1, head), which is the same mean up to rounding;
- the head is a ``matmul`` with its weight stored transposed (``nn.Linear`` lowers with a
  ``transpose`` of the weight at run time);
- fp16: the mean is subtracted in fp32 and the result cast once to fp16, so the graph's input and
  output stay float32 whatever the precision (one ``cast`` each way).

Core AI has no classifier convention (no labels or ``classify`` op in the IR: labels live in the
asset metadata), so the graph returns the logits only.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from convert.coreml.graph import CoreMLSHSA
from shvit.deploy import PixelInput
from shvit.layers import SHSADeploy, SqueezeExcite
from shvit.model import SHViT


class CoreAISHSA(CoreMLSHSA):
    """:class:`SHSADeploy` computing ``attn^T`` directly (same parameters, same function)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x1, x2 = torch.split(x, [self.pdim, self.dim - self.pdim], dim=1)
        x1 = nn.functional.layer_norm(x1, x1.shape[1:], eps=self.eps)
        qkv = self.qkv(x1).reshape(b, 2 * self.qk_dim + self.pdim, h * w)
        q, k, v = torch.split(qkv, [self.qk_dim, self.qk_dim, self.pdim], dim=1)
        attn_t = torch.matmul(k.transpose(1, 2), q).softmax(dim=1)
        x1 = torch.matmul(v, attn_t).reshape(b, self.pdim, h, w)
        return self.proj(torch.cat([x1, x2], dim=1))


class SummedSqueezeExcite(nn.Module):
    """:class:`SqueezeExcite` pooling with a sum; ``1 / pixels`` lives in ``fc1``'s weights."""

    def __init__(self, se: SqueezeExcite, *, pixels: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = se.fc1, se.act, se.fc2
        with torch.no_grad():
            self.fc1.weight.mul_(1.0 / pixels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.act(self.fc1(x.sum((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class CoreAIClassifierGraph(nn.Module):
    """RGB pixels 0-255 (N, 3, S, S) float32 → logits (N, classes) float32, for coreai-torch.

    ``input_size`` fixes the pooled areas folded into the weights; ``fp16`` casts weights and
    compute to float16 after the (fp32) mean subtraction.
    """

    pixel_mean: torch.Tensor

    def __init__(self, deploy: nn.Module, *, input_size: int, fp16: bool = False) -> None:
        super().__init__()
        if getattr(deploy, "head_dist", None) is not None:
            raise TypeError("CoreAIClassifierGraph needs a deploy-mode model (call shvit.reparameterize first)")
        front = PixelInput(cast(SHViT, deploy))  # a deploy-mode SHViT; PixelInput checks its stem
        model = front.model.eval()
        areas = _pooled_areas(model, input_size)
        _rewrite(model, areas)
        head = model.head
        if not isinstance(head, nn.Linear):
            raise TypeError("CoreAIClassifierGraph needs a deploy-mode model with a fused Linear head")
        with torch.no_grad():
            head_t = (head.weight / areas["head"]).t().contiguous()
            head_b = head.bias.detach().clone()
        model.head = nn.Identity()
        self.model = model
        self.register_buffer("pixel_mean", front.pixel_mean)
        self.head_weight_t = nn.Parameter(head_t, requires_grad=False)
        self.head_bias = nn.Parameter(head_b, requires_grad=False)
        self.fp16 = fp16
        if fp16:
            self.model.half()
            self.head_weight_t.data = self.head_weight_t.data.half()
            self.head_bias.data = self.head_bias.data.half()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels - self.pixel_mean
        if self.fp16:
            x = x.half()
        pooled = self.model.forward_features(x).sum((2, 3))
        logits = torch.matmul(pooled, self.head_weight_t) + self.head_bias
        return logits.float() if self.fp16 else logits


def _pooled_areas(model: SHViT, input_size: int) -> dict[str, int]:
    """H·W seen by every squeeze-excite (by module name) and by the head, from one dry run."""
    areas: dict[str, int] = {}
    hooks = [
        module.register_forward_pre_hook(lambda _m, args, name=name: areas.__setitem__(name, args[0].shape[2] * args[0].shape[3]))
        for name, module in model.named_modules()
        if isinstance(module, SqueezeExcite)
    ]
    try:
        with torch.no_grad():
            features = model.forward_features(torch.zeros(1, 3, input_size, input_size))
    finally:
        for hook in hooks:
            hook.remove()
    areas["head"] = features.shape[2] * features.shape[3]
    return areas


def _rewrite(module: nn.Module, areas: dict[str, int], prefix: str = "") -> None:
    for name, child in module.named_children():
        path = f"{prefix}.{name}" if prefix else name
        if type(child) is SHSADeploy:
            setattr(module, name, CoreAISHSA.from_deploy(child))
        elif isinstance(child, SqueezeExcite):
            setattr(module, name, SummedSqueezeExcite(child, pixels=areas[path]))
        else:
            _rewrite(child, areas, path)
