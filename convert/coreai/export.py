"""Deploy model → Core AI program (in memory) → ``.aimodel`` asset, and the plain baseline.

coreai-torch converts a ``torch.export``ed, decomposed program, which coreai-core (1.0.0b3 on)
folds and cleans as it is built (constant folding, CSE). A program carries no metadata: the asset's
``metadata.json`` does, so :func:`to_aimodel` returns the program together with the metadata
:func:`save_aimodel` writes beside it. ``int8-weights`` and ``int4-weights`` are the fp16 program
with its weights compressed by coreai-opt (:mod:`convert.coreai.compress`); int8 activations
(W8A8) are refused with a line naming what is offered.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convert.coreai.compress import COMPRESSIONS, W8A8_REFUSED, compress_weights
from convert.coreai.deps import require
from convert.coreai.graph import CoreAIClassifierGraph
from convert.coreml.metadata import AUTHOR, LICENSE
from convert.errors import ConvertError
from convert.io.sidecar import toolkit_version
from shvit.config import IMAGENET_MEAN, IMAGENET_STD

INPUT_NAME = "image"
LOGITS_NAME = "logits"
ENTRYPOINT = "main"
SUFFIX = ".aimodel"
COMPRESSED_PRECISIONS: tuple[str, ...] = tuple(COMPRESSIONS)
PRECISIONS: tuple[str, ...] = ("fp16", "fp32", *COMPRESSED_PRECISIONS)
REFUSED_PRECISIONS: dict[str, str] = {"int8": W8A8_REFUSED}
"""Precisions other targets offer that Core AI export refuses, each with its one-line reason."""
MINIMUM_OS = "27"
META_PREFIX = "shvit."
REQUIRED_METADATA: tuple[str, ...] = ("variant", "weights_sha256")
"""Keys the caller must give in ``metadata`` (a random-weights export says so in ``weights_sha256``)."""


class UnsupportedPrecision(ConvertError):
    """A precision this Core AI exporter does not produce (int8 activations, an unknown name)."""


@dataclass(frozen=True)
class CoreAIModel:
    """A converted, optimised Core AI program and the asset metadata that goes with it.

    ``program`` is coreai's ``AIProgram``; ``metadata`` its ``AIModelAssetMetadata`` (author,
    licence, description and the ``shvit.*`` custom entries, labels included). ``notes`` are
    coreai-opt's lines about weights a compressed precision left fp16, for the caller to log.
    """

    program: Any
    metadata: Any
    precision: str
    input_size: int
    labels: list[str] = field(repr=False)
    notes: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict, repr=False)
    """The caller's ``shvit.*`` entries (variant, weights), kept for :func:`compress`."""


def to_aimodel(
    deploy: nn.Module,
    *,
    input_size: int,
    labels: list[str],
    precision: str = "fp16",
    metadata: dict[str, str],
) -> CoreAIModel:
    """The Core AI program for ``deploy`` (a :func:`shvit.reparameterize`d model), not saved.

    Input ``image``: RGB pixels 0-255, float32 (1, 3, S, S), ImageNet normalisation built in;
    output ``logits``: float32 (1, classes). ``metadata`` adds ``shvit.*`` entries (it must name
    the ``variant`` and ``weights_sha256``); labels, precision, weight compression, toolkit version
    and minimum OS are added here. ``int8-weights`` / ``int4-weights``: the fp16 program, its
    weights then compressed by coreai-opt (activations stay fp16).
    """
    _check(deploy, labels=labels, precision=precision, metadata=metadata)
    float_precision = "fp16" if precision in COMPRESSIONS else precision
    graph = CoreAIClassifierGraph(deploy, input_size=input_size, fp16=float_precision == "fp16").eval()
    model = CoreAIModel(
        program=_convert(graph, input_size),
        precision=float_precision,
        input_size=input_size,
        labels=list(labels),
        metadata=asset_metadata(labels=labels, precision=float_precision, input_size=input_size, extra=metadata),
        extra=dict(metadata),
    )
    return compress(model, precision) if precision in COMPRESSIONS else model


def compress(model: CoreAIModel, precision: str) -> CoreAIModel:
    """The fp16 ``model`` with its weights compressed as ``precision`` (``int8-weights``,
    ``int4-weights``) says, and metadata saying so; ``model`` itself is left as it is.

    ``to_aimodel(..., precision=p)`` is ``compress(to_aimodel(..., precision="fp16"), p)``: one
    conversion can give every compressed precision.
    """
    if precision not in COMPRESSIONS:
        raise UnsupportedPrecision(f"Core AI weight compression {precision!r} is not one of {', '.join(COMPRESSIONS)}")
    if model.precision != "fp16":
        raise ConvertError(f"weights are compressed from the fp16 program, not from a {model.precision} one")
    program, notes = compress_weights(model.program, COMPRESSIONS[precision])
    metadata = asset_metadata(labels=model.labels, precision=precision, input_size=model.input_size, extra=model.extra)
    return replace(model, program=program, metadata=metadata, precision=precision, notes=tuple(notes))


def save_aimodel(model: CoreAIModel, path: Path) -> Path:
    """Write ``model`` as the asset folder ``path`` (``*.aimodel``), replacing an existing asset only.

    coreai's ``save_asset`` deletes whatever is at ``path`` first: a folder that is not a Core AI
    asset is refused rather than deleted.
    """
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ConvertError(f"a Core AI asset is a folder named *{SUFFIX}, not {path.name}")
    if path.exists() and not require("coreai.authoring").AIModelAsset.is_valid(path):
        raise ConvertError(f"{path} exists and is not a Core AI asset: not replacing it")
    asset_os = require("coreai.authoring").OSVersion
    model.program.save_asset(path, metadata=model.metadata, minimum_os=getattr(asset_os, f"v{MINIMUM_OS}"))
    return path


def plain_conversion(module: nn.Module, size: int) -> Any:
    """The baseline ours is measured against: coreai-torch's default conversion of ``module`` as is
    (``torch.export``, its decomposition table, ``to_coreai``), tensor in, no rewrite. coreai-core
    1.0.0b3 optimises a program as it is built, so this baseline includes Core AI's own optimiser."""
    return _convert(module.eval(), size)


def asset_metadata(*, labels: list[str], precision: str, input_size: int, extra: dict[str, str]) -> Any:
    """The ``AIModelAssetMetadata`` of an asset: descriptive fields and the ``shvit.*`` custom entries."""
    runtime = require("coreai.runtime")
    meta = runtime.AIModelAssetMetadata()
    variant = extra.get("variant", "")
    name = f"SHViT-{variant.upper()}" if variant and variant != "auto" else "SHViT"
    compression = COMPRESSIONS.get(precision)
    meta.author = AUTHOR
    meta.license = LICENSE
    meta.model_description = (
        f"{name} image classifier ({len(labels)} classes, {compression.describe() if compression else precision}). "
        f"Input '{INPUT_NAME}': RGB pixels 0-255, "
        f"float32 1x3x{input_size}x{input_size}, ImageNet normalisation built in; output '{LOGITS_NAME}': class "
        "scores before the softmax; labels in creator metadata 'shvit.labels'."
    )
    entries: dict[str, Any] = {
        **extra,
        "input_size": str(input_size),
        "num_classes": str(len(labels)),
        "precision": precision,
        "mean": ",".join(f"{m:g}" for m in IMAGENET_MEAN),
        "std": ",".join(f"{s:g}" for s in IMAGENET_STD),
        "input": f"{INPUT_NAME}: RGB 0-255 float32 NCHW",
        "output": f"{LOGITS_NAME}: float32 logits",
        "minimum_os": MINIMUM_OS,
        "toolkit_version": toolkit_version(),
        "coreai_torch_version": require("coreai_torch").__version__,
        "torch_version": torch.__version__.split("+")[0],
    }
    if compression is not None:
        entries["weight_compression"] = compression.describe()
        entries["coreai_opt_version"] = require("coreai_opt").__version__
    for key, value in entries.items():
        meta.set_custom(META_PREFIX + key, str(value))
    meta.set_custom(META_PREFIX + "labels", list(labels))
    return meta


def _convert(module: nn.Module, size: int) -> Any:
    coreai_torch = require("coreai_torch")
    example = (torch.zeros(1, 3, size, size),)

    def export_fn(m: nn.Module) -> Any:
        return torch.export.export(m, args=example).run_decompositions(coreai_torch.get_decomp_table())

    converter = coreai_torch.TorchConverter(mode=coreai_torch.TorchConverter.Mode.RELEASE)
    with _quiet(), torch.no_grad():
        program = converter.add_pytorch_module(
            module,
            export_fn=export_fn,
            input_names=[INPUT_NAME],
            output_names=[LOGITS_NAME],
            entrypoint_name=ENTRYPOINT,
        ).to_coreai()
    return program


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """coreai-torch prints a 'converting N program(s)' line and torch.export warns; errors still propagate."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _check(deploy: nn.Module, *, labels: list[str], precision: str, metadata: dict[str, str]) -> None:
    if precision in REFUSED_PRECISIONS:
        raise UnsupportedPrecision(f"Core AI precision {precision!r}: {REFUSED_PRECISIONS[precision]}")
    if precision not in PRECISIONS:
        raise UnsupportedPrecision(f"Core AI precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    missing = [key for key in REQUIRED_METADATA if not metadata.get(key)]
    if missing:
        raise ConvertError(f"Core AI metadata is missing {', '.join(missing)}: every asset records its variant and weights")
    classes = getattr(getattr(deploy, "head", None), "out_features", None)
    if classes is not None and classes != len(labels):
        raise ConvertError(f"{len(labels)} labels for a model with {classes} classes: give one label per class")
