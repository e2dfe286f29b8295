"""Where a model's weights came from, carried on the model itself.

An export records what it was made from (Xcode shows it in the package's metadata), so the
record must follow the model object from :func:`shvit.create_model` to the exporter and stay true
when the weights change in between (fine-tuning in a notebook): the tensors' own hash decides.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

RANDOM_INIT_SEED = 0
"""The seed of the toolkit's random-weight try-outs (``--random-init``), so a try-out can be checked later."""
RANDOM_SOURCE = "random initialisation (not for deployment)"
ORIGIN_ATTRIBUTE = "weights_origin"


@dataclass(frozen=True)
class WeightsOrigin:
    """A checkpoint file (``path``, ``sha256`` of the file) or a seeded random draw (``seed``), and the
    hash of the tensors as they were then (``state_sha256``), which tells later whether they still are."""

    state_sha256: str
    source: str = RANDOM_SOURCE
    path: str | None = None
    sha256: str | None = None
    seed: int | None = None
    fused: bool = False

    @property
    def random(self) -> bool:
        return self.path is None

    def record(self) -> dict[str, Any]:
        """As a sidecar's ``weights`` entry: only the fields that say something."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v is not False}


def state_sha256(model: nn.Module) -> str:
    """Hash of every tensor in ``model.state_dict()`` (names, dtypes, shapes and values, in name order)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        if value.numel():
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def origin_of(model: nn.Module) -> WeightsOrigin | None:
    """The origin recorded on ``model``, if its tensors are still the ones recorded; else None."""
    origin = getattr(model, ORIGIN_ATTRIBUTE, None)
    if not isinstance(origin, WeightsOrigin) or origin.state_sha256 != state_sha256(model):
        return None
    return origin


def weights_digest(info: Mapping[str, Any]) -> str:
    """One value for an artifact's ``weights_sha256`` metadata field that is true for every kind of source."""
    if info.get("sha256"):
        return str(info["sha256"])
    if is_random(info) or not info.get("state_sha256"):
        seed = f", seed {info['seed']}" if "seed" in info else ""
        return f"none (random initialisation{seed}; not for deployment)"
    return f"{info['state_sha256']} (tensors of an in-memory model; no checkpoint file)"


def is_random(record: Mapping[str, Any]) -> bool:
    """Whether a ``weights`` record (a sidecar's, a source's) is a random initialisation."""
    return record.get("source") == RANDOM_SOURCE


def mark_origin(model: nn.Module, origin: WeightsOrigin) -> None:
    object.__setattr__(model, ORIGIN_ATTRIBUTE, origin)
