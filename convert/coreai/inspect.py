"""Facts read back from a saved ``.aimodel`` asset (never from the export's memory), without running it.

Two op views, both of the stored program:
- ``op_histogram`` / ``ops``: coreai's own ``AIModelAssetSummary.operation_distribution``, the
  official statistic. It lists every op together with the ops its decomposition expands to (a
  ``decomposable.broadcasting_add`` also counts as ``broadcast_in_dims`` + ``add``; a composite
  graph such as ``layer_norm`` counts once, each call as one ``invoke``); ``ops`` excludes constants.
- ``graph_ops``: the ops written in the ``main`` graph itself (constants excluded), for structural
  checks such as how many ``transpose`` or ``reshape`` ops the graph really holds.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from convert.coreai.deps import require
from convert.coreai.export import ENTRYPOINT, INPUT_NAME, LOGITS_NAME, META_PREFIX
from convert.errors import ConvertError

CONSTANT_OP = "constant"
_SHAPE = re.compile(r"\((\w+), ([\d ×]+)\)")


def facts(path: Path) -> dict[str, Any]:
    """Input size, classes, precision, op counts, labels and metadata of the asset at ``path``."""
    asset_cls = require("coreai.authoring").AIModelAsset
    path = Path(path)
    if not asset_cls.is_valid(path):
        raise ConvertError(f"{path} is not a Core AI asset (a *.aimodel folder with main.mlirb and metadata.json)")
    asset = asset_cls.load(path)
    summary = asset.summary(include_statistics=True)
    if summary is None:
        raise ConvertError(f"{path} holds no Core AI program (main.mlirb missing)")
    histogram = dict(sorted(summary.operation_distribution))
    inputs = dict(summary.function_inputs(ENTRYPOINT))
    outputs = dict(summary.function_outputs(ENTRYPOINT))
    input_dtype, input_shape = _parse_array(inputs.get(INPUT_NAME, ""))
    _, output_shape = _parse_array(outputs.get(LOGITS_NAME, ""))
    meta = asset.metadata
    custom = dict(meta.creator_defined_metadata)
    shvit_meta = {k[len(META_PREFIX):]: v for k, v in custom.items() if k.startswith(META_PREFIX)}
    labels = shvit_meta.pop("labels", None)
    storage = dict(summary.storage_types)
    return {
        "input_name": INPUT_NAME if INPUT_NAME in inputs else next(iter(inputs), None),
        "input_shape": input_shape,
        "input_dtype": input_dtype,
        "input_size": input_shape[-1] if input_shape else None,
        "num_classes": output_shape[-1] if output_shape else None,
        "precision": shvit_meta.get("precision") or _graph_precision(storage),
        "graph_precision": _graph_precision(storage),
        "ops": sum(n for op, n in histogram.items() if op != CONSTANT_OP),
        "op_histogram": histogram,
        "graph_ops": graph_op_counts(asset),
        "storage_types": storage,
        "minimum_os": summary._compatibility_version,  # noqa: SLF001 - the only reader of the asset's OS version
        "labels": list(labels) if labels is not None else None,
        "metadata": shvit_meta,
        "author": meta.author,
        "license": meta.license,
        "description": meta.model_description,
        "producer": meta._producer,  # noqa: SLF001 - coreai stamps it; no public getter
    }


def graph_op_counts(asset: Any, entrypoint: str = ENTRYPOINT) -> dict[str, int]:
    """Op names (``coreai.`` prefix dropped) written in ``entrypoint``'s body, constants excluded."""
    program = asset.program  # keep the module alive while its ops are read
    graph = program.get_graph(entrypoint)
    if graph is None:
        raise ConvertError(f"{Path(asset.path).name} has no '{entrypoint}' graph")
    names = [op.operation.name.removeprefix("coreai.") for op in graph.operation.regions[0].blocks[0].operations]
    counts = Counter(name for name in names if name not in (CONSTANT_OP, "output"))
    return dict(sorted(counts.items()))


def _parse_array(text: str) -> tuple[str | None, list[int] | None]:
    """``'NDArray (Float32, 1 × 3 × 224 × 224)'`` → ``('Float32', [1, 3, 224, 224])``."""
    match = _SHAPE.search(text)
    if not match:
        return None, None
    return match.group(1), [int(d) for d in match.group(2).split("×")]


def _graph_precision(storage: dict[str, int]) -> str:
    """fp16 when float16 holds most of the stored elements (weights), else fp32."""
    return "fp16" if storage.get("Float16", 0) > storage.get("Float32", 0) else "fp32"
