"""Labels and input description inside the ``.tflite``, in the standard TFLite Metadata format.

The official writer (``tflite-support``'s MetadataPopulator) cannot be installed beside this
toolkit: its last release pins ``protobuf<4``, while TensorFlow/onnx2tf here pin 4.25. So this
module writes the same bytes the populator writes, from the published schema
(``tensorflow_lite_support/metadata/metadata_schema.fbs``, file identifier ``M001``):

* a ``ModelMetadata`` flatbuffer in a model buffer referenced by the metadata entry
  ``TFLITE_METADATA``: model name/description/version/author/license; the input tensor as an RGB
  image with ``NormalizationOptions`` mean 0 / std 1 (normalisation is baked into the graph: feed
  pixels 0-255 as they are) and stats min 0 / max 255; the output tensor with the label file as a
  ``TENSOR_AXIS_LABELS`` associated file;
* the label file itself, packed as an uncompressed zip archive appended to the flatbuffer, which is
  where the Android Task Library and LiteRT's MetadataExtractor look for associated files.

A JSON copy of the same facts (plus quantisation and export details) sits in a second metadata
entry, ``shvit_metadata``, for tools that do not parse ``M001`` (keys: ``schema``, ``name``,
``labels_file``, ``num_classes``, ``input``, ``output``, ``export``).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np

from convert.labels import LabelTextError, label_lines

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
"""The earliest date a zip entry can hold; every packed file gets it."""

METADATA_NAME = "TFLITE_METADATA"
JSON_NAME = "shvit_metadata"
JSON_SCHEMA = "shvit-mobile/tflite-metadata/1"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"

# metadata_schema.fbs enum values
_COLOR_SPACE_RGB = 1
_CONTENT_FEATURE, _CONTENT_IMAGE = 1, 2
_PROCESS_NORMALIZATION = 1
_FILE_TENSOR_AXIS_LABELS = 2


@dataclass(frozen=True)
class ModelInfo:
    """What the metadata says about one exported classifier."""

    name: str
    description: str
    version: str
    labels: list[str]
    labels_file: str
    input_size: int
    input_description: str
    output_description: str
    author: str = "shvit-mobile"
    license: str = "See the weights' license"
    extra: dict[str, Any] = field(default_factory=dict)


def embed(model: bytes, info: ModelInfo, *, io_names: tuple[str, str] = ("pixels", "logits")) -> bytes:
    """``model`` with both metadata entries added and the label file appended as a zip archive.

    The input and output tensors are renamed ``io_names`` (TensorFlow calls them
    ``serving_default_pixels:0`` and ``PartitionedCall:0``), the names apps see.
    """
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    graph = tree.subgraphs[0]
    graph.tensors[graph.inputs[0]].name = io_names[0].encode()
    graph.tensors[graph.outputs[0]].name = io_names[1].encode()
    tree.metadata = [m for m in (tree.metadata or []) if m.name not in (METADATA_NAME.encode(), JSON_NAME.encode())]
    for name, payload in ((METADATA_NAME, _model_metadata(info)), (JSON_NAME, _json_metadata(info))):
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(payload, dtype=np.uint8)
        tree.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name.encode()
        entry.buffer = len(tree.buffers) - 1
        tree.metadata.append(entry)
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return _append_zip(bytes(builder.Output()), {info.labels_file: "\n".join(info.labels) + "\n"})


def _append_zip(model: bytes, files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    out.write(model)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, text in files.items():
            # A fixed timestamp keeps re-exports byte-identical.
            archive.writestr(zipfile.ZipInfo(name, date_time=ZIP_EPOCH), text.encode("utf-8"))
    return out.getvalue()


def _json_metadata(info: ModelInfo) -> bytes:
    record = {
        "schema": JSON_SCHEMA,
        "name": info.name,
        "description": info.description,
        "version": info.version,
        "labels_file": info.labels_file,
        "num_classes": len(info.labels),
        **info.extra,
    }
    return json.dumps(record, sort_keys=True).encode()


def _model_metadata(info: ModelInfo) -> bytes:
    b = flatbuffers.Builder(1024)

    def string(text: str) -> int:
        return b.CreateString(text)

    def table(fields: list[tuple[str, int, Any]]) -> int:
        """A table from ``(kind, slot, value)``: kind 'o' offset, 'b' byte, 'u' uint32."""
        b.StartObject(max(slot for _, slot, _ in fields) + 1)
        for kind, slot, value in fields:
            {"o": b.PrependUOffsetTRelativeSlot, "b": b.PrependUint8Slot, "u": b.PrependUint32Slot}[kind](slot, value, 0)
        return b.EndObject()

    def vector(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def floats(values: list[float]) -> int:
        return b.CreateNumpyVector(np.asarray(values, dtype=np.float32))

    labels_file = table(
        [
            ("o", 0, string(info.labels_file)),
            ("o", 1, string("Class names, one per line, in output order")),
            ("b", 2, _FILE_TENSOR_AXIS_LABELS),
        ]
    )
    image_size = table([("u", 0, info.input_size), ("u", 1, info.input_size)])
    image_props = table([("b", 0, _COLOR_SPACE_RGB), ("o", 1, image_size)])
    norm = table([("o", 0, floats([0.0])), ("o", 1, floats([1.0]))])
    process = table([("b", 0, _PROCESS_NORMALIZATION), ("o", 1, norm)])
    stats_in = table([("o", 0, floats([255.0])), ("o", 1, floats([0.0]))])
    content_in = table([("b", 0, _CONTENT_IMAGE), ("o", 1, image_props)])
    tensor_in = table(
        [
            ("o", 0, string("image")),
            ("o", 1, string(info.input_description)),
            ("o", 3, content_in),
            ("o", 4, vector([process])),
            ("o", 5, stats_in),
        ]
    )
    feature_props = _empty_table(b)
    content_out = table([("b", 0, _CONTENT_FEATURE), ("o", 1, feature_props)])
    tensor_out = table(
        [("o", 0, string("logits")), ("o", 1, string(info.output_description)), ("o", 3, content_out), ("o", 6, vector([labels_file]))]
    )
    subgraph = table(
        [("o", 0, string(info.name)), ("o", 1, string(info.description)), ("o", 2, vector([tensor_in])), ("o", 3, vector([tensor_out]))]
    )
    root = table(
        [
            ("o", 0, string(info.name)),
            ("o", 1, string(info.description)),
            ("o", 2, string(info.version)),
            ("o", 3, vector([subgraph])),
            ("o", 4, string(info.author)),
            ("o", 5, string(info.license)),
            ("o", 7, string(MIN_PARSER_VERSION)),
        ]
    )
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def _empty_table(b: flatbuffers.Builder) -> int:
    b.StartObject(0)
    return b.EndObject()


# ---------------------------------------------------------------- reading back (shvit-demo's too: one parser per part)


def metadata_entries(data: bytes) -> dict[str, bytes]:
    """Every metadata entry of a ``.tflite`` flatbuffer, name → payload; a damaged flatbuffer raises."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    entries = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        buffer = model.Buffers(entry.Buffer())
        payload = buffer.DataAsNumpy().tobytes() if buffer is not None and buffer.DataLength() else b""
        entries[(entry.Name() or b"").decode("utf-8", "replace")] = payload
    return entries


def shvit_record(data: bytes) -> dict[str, Any] | None:
    """shvit-convert's JSON entry (:data:`JSON_NAME`), or None where the model has none that parses."""
    payload = metadata_entries(data).get(JSON_NAME)
    if payload is None:
        return None
    try:
        record = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def packed_files(data: bytes) -> dict[str, bytes]:
    """The files of the zip archive appended to the flatbuffer (TFLite Metadata's associated files), name → bytes."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def packed_labels(data: bytes, *, num_classes: int) -> tuple[str, list[str]] | None:
    """(file name, labels) of the packed label file with one label per class, or None.

    The file shvit's record names comes first, then names containing "label", then the rest; files
    that are not label text are passed over (a model may pack other associated files).
    """
    files = packed_files(data)
    if not files:
        return None
    declared = (shvit_record(data) or {}).get("labels_file")
    for name in sorted(files, key=lambda n: (n != declared, "label" not in n.lower(), n)):
        try:
            labels = label_lines(files[name])
        except LabelTextError:
            continue
        if len(labels) == num_classes:
            return name, labels
    return None


def read(path: Path) -> dict[str, Any]:
    """Both metadata entries and the packed files of a ``.tflite`` (empty parts where absent)."""
    data = Path(path).read_bytes()
    entries = metadata_entries(data)
    files = {name: raw.decode("utf-8") for name, raw in packed_files(data).items()}
    standard = _parse_model_metadata(entries[METADATA_NAME]) if METADATA_NAME in entries else {}
    return {"json": shvit_record(data) or {}, "standard": standard, "files": files}


class _Reader:
    """Just enough of a flatbuffer table reader to check the ``M001`` metadata by slot number."""

    def __init__(self, buf: bytes, pos: int) -> None:
        from flatbuffers.table import Table

        self.tab = Table(bytearray(buf), pos)

    def _field(self, slot: int) -> int:
        return self.tab.Offset(4 + 2 * slot)

    def string(self, slot: int) -> str | None:
        off = self._field(slot)
        return self.tab.String(off + self.tab.Pos).decode() if off else None

    def byte(self, slot: int) -> int:
        off = self._field(slot)
        return self.tab.Get(flatbuffers.number_types.Uint8Flags, off + self.tab.Pos) if off else 0

    def table(self, slot: int) -> _Reader | None:
        off = self._field(slot)
        return _Reader(self.tab.Bytes, self.tab.Indirect(off + self.tab.Pos)) if off else None

    def tables(self, slot: int) -> list[_Reader]:
        off = self._field(slot)
        if not off:
            return []
        start, n = self.tab.Vector(off), self.tab.VectorLen(off)
        return [_Reader(self.tab.Bytes, self.tab.Indirect(start + 4 * i)) for i in range(n)]

    def floats(self, slot: int) -> list[float]:
        off = self._field(slot)
        if not off:
            return []
        return [float(x) for x in self.tab.GetVectorAsNumpy(flatbuffers.number_types.Float32Flags, off)]


def _parse_model_metadata(buf: bytes) -> dict[str, Any]:
    if flatbuffers.util.GetBufferIdentifier(bytearray(buf), 0) != METADATA_IDENTIFIER:
        raise ValueError("TFLITE_METADATA does not carry the M001 identifier")
    root = _Reader(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, bytearray(buf), 0))
    subgraph = root.tables(3)[0]
    tensor_in, tensor_out = subgraph.tables(2)[0], subgraph.tables(3)[0]
    unit = tensor_in.tables(4)[0]
    norm = unit.table(1)
    content_in = tensor_in.table(3)
    image = content_in.table(1) if content_in else None
    stats = tensor_in.table(5)
    return {
        "name": root.string(0),
        "description": root.string(1),
        "version": root.string(2),
        "author": root.string(4),
        "license": root.string(5),
        "min_parser_version": root.string(7),
        "input": {
            "name": tensor_in.string(0),
            "description": tensor_in.string(1),
            "content": content_in.byte(0) if content_in else 0,
            "color_space": image.byte(0) if image else 0,
            "process_unit": unit.byte(0),
            "mean": norm.floats(0) if norm else [],
            "std": norm.floats(1) if norm else [],
            "max": stats.floats(0) if stats else [],
            "min": stats.floats(1) if stats else [],
        },
        "output": {
            "name": tensor_out.string(0),
            "description": tensor_out.string(1),
            "associated_files": [{"name": f.string(0), "type": f.byte(2)} for f in tensor_out.tables(6)],
        },
    }
