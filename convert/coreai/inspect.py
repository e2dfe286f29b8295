"""Facts read back from a saved ``.aimodel`` asset (never from the export's memory), without running it.

Two op views, both of the stored program:
- ``op_histogram`` / ``ops``: coreai's own ``AIModelAssetSummary.operation_distribution``, the
  official statistic. It lists every op together with the ops its decomposition expands to (a
  ``decomposable.broadcasting_add`` also counts as ``broadcast_in_dims`` + ``add``; a composite
  graph such as ``layer_norm`` counts once, each call as one ``invoke``); ``ops`` excludes constants
  and the ops that expand compressed weights at load (``decompression_ops``).
- ``graph_ops``: the ops written in the ``main`` graph itself (constants excluded), for structural
  checks such as how many ``transpose`` or ``reshape`` ops the graph really holds.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from convert.coreai.compress import DECOMPRESSION_OPS
from convert.coreai.deps import require
from convert.coreai.export import ENTRYPOINT, INPUT_NAME, LOGITS_NAME, META_PREFIX
from convert.errors import ConvertError

CONSTANT_OP = "constant"
_SHAPE = re.compile(r"\((\w+), ([\d ×]+)\)")
_GRAPH_LINE = re.compile(r"^(?P<indent> *)coreai\.graph\b[^@]*@(?P<name>[\w.$-]+)\(")
_OP_LINE = re.compile(r"(?:%[\w#:]+(?:, %[\w#:]+)* = )?\"?([A-Za-z_][\w.]*)")


def facts(path: Path) -> dict[str, Any]:
    """Input size, classes, precision, op counts, storage, size, labels and metadata of the asset at ``path``."""
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
    shvit_meta = {k[len(META_PREFIX) :]: v for k, v in custom.items() if k.startswith(META_PREFIX)}
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
        "ops": sum(n for op, n in histogram.items() if op != CONSTANT_OP and op not in DECOMPRESSION_OPS),
        "decompression_ops": sum(histogram.get(op, 0) for op in DECOMPRESSION_OPS),
        "op_histogram": histogram,
        "graph_ops": graph_op_counts(asset),
        "storage_types": storage,
        "size_bytes": asset_bytes(path),
        "minimum_os": summary._compatibility_version,
        "labels": list(labels) if labels is not None else None,
        "metadata": shvit_meta,
        "author": meta.author,
        "license": meta.license,
        "description": meta.model_description,
        "producer": meta._producer,
    }


def graph_op_counts(asset: Any, entrypoint: str = ENTRYPOINT) -> dict[str, int]:
    """Op names (``coreai.`` prefix dropped) written in ``entrypoint``'s body, constants excluded.

    coreai-core 1.0.0b3 has no public accessor for a program's graphs (``AIProgram.get_graph`` is
    gone; ``_get_graph`` and the MLIR bindings under ``coreai._compiler`` are private and unversioned).
    The program's printed IR (``str(AIProgram)``, public) is read instead: the body of
    ``coreai.graph @<entrypoint>`` is the lines indented one level below it, one op per line, each
    ``%results = dialect.op ...`` or ``dialect.op ...``; deeper lines belong to nested regions.
    """
    lines = iter(str(asset.program).splitlines())
    for line in lines:
        match = _GRAPH_LINE.match(line)
        if match and match.group("name") == entrypoint:
            body = match.group("indent") + "  "
            break
    else:
        raise ConvertError(f"{Path(asset.path).name} has no '{entrypoint}' graph")
    counts: Counter[str] = Counter()
    for line in lines:
        if not line.startswith(body):
            break  # the graph's closing brace
        match = _OP_LINE.match(line, len(body))
        if match:  # a line indented deeper continues a nested region and does not match
            counts[match.group(1).removeprefix("coreai.")] += 1
    return dict(sorted((name, n) for name, n in counts.items() if name not in (CONSTANT_OP, "output")))


def _parse_array(text: str) -> tuple[str | None, list[int] | None]:
    """``'NDArray (Float32, 1 × 3 × 224 × 224)'`` → ``('Float32', [1, 3, 224, 224])``."""
    match = _SHAPE.search(text)
    if not match:
        return None, None
    return match.group(1), [int(d) for d in match.group(2).split("×")]


def asset_bytes(path: Path) -> int:
    """Bytes of every file in the asset folder (program, hash, metadata)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


_STORED_AS = {
    "Int8": "int8-weights",
    "UInt8": "int8-weights",
    "Int4": "int4-weights",
    "UInt4": "int4-weights",
    "Float16": "fp16",
    "Float32": "fp32",
}


def _graph_precision(storage: dict[str, int]) -> str:
    """The precision whose storage type holds most of the stored elements (the weights):
    ``int8-weights`` / ``int4-weights`` for integer weights, else ``fp16`` or ``fp32``."""
    counts: dict[str, int] = {}
    for kind, n in storage.items():
        if kind in _STORED_AS:
            counts[_STORED_AS[kind]] = counts.get(_STORED_AS[kind], 0) + n
    return max(counts, key=lambda p: (counts[p], p == "fp16"), default="fp32")
