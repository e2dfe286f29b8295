"""A reference executor for Core ML ML Programs, reading the ``.mlpackage`` itself.

Core ML runs only on Apple platforms, so on Linux this is how an exported package is checked: the
program (``model.mlmodel`` protobuf) and its weights (``weight.bin``, read with coremltools' own
blob reader) are interpreted op by op with PyTorch in float32. Every op whose declared output type
is fp16 has its output rounded to fp16, which emulates an fp16 program's storage precision (not
the exact accumulation order of the GPU or Neural Engine). A program using an op this executor
does not implement is refused up front, naming the op, rather than approximated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convert.coreml.ctimport import import_coremltools
from convert.coreml.mil_ops import OPS, NotBatchable, OpContext
from convert.errors import ConvertError

DEFAULT_BATCH = 8
Observer = Callable[[str, torch.Tensor], None]
Rewrite = Callable[[str, torch.Tensor], torch.Tensor]

_NUMPY_DTYPES: dict[str, Any] = {
    "FLOAT16": np.float16,
    "FLOAT32": np.float32,
    "FLOAT64": np.float64,
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}
_BLOB_READERS: dict[str, str] = {
    "FLOAT16": "read_fp16_data",
    "FLOAT32": "read_float_data",
    "INT8": "read_int8_data",
    "UINT8": "read_uint8_data",
    "INT16": "read_int16_data",
    "UINT16": "read_uint16_data",
    "INT32": "read_int32_data",
    "UINT32": "read_uint32_data",
    "INT4": "read_int4_data",
    "UINT4": "read_uint4_data",
    "UINT2": "read_uint2_data",
    "UINT1": "read_uint1_data",
    "UINT3": "read_uint3_data",
    "UINT6": "read_uint6_data",
}
_FLOAT_TYPES = frozenset({"FLOAT16", "FLOAT32", "FLOAT64"})


class UnsupportedProgram(ConvertError):
    """A package this executor cannot run faithfully (unknown op, control flow, non-program model)."""


@dataclass(frozen=True)
class InputInfo:
    name: str
    shape: tuple[int, ...]
    color_space: str | None  # "RGB"/"BGR" for image inputs, None for tensors


@dataclass
class _Op:
    type: str
    name: str
    inputs: dict[str, Any]  # param -> ("var", name) | ("const", value) | list of those
    outputs: list[str]
    dtypes: list[str]


class MILExecutor:
    """The ``main`` function of one ``.mlpackage``, ready to run on batches of inputs."""

    def __init__(self, package: Path, *, emulate_fp16: bool = True) -> None:
        import_coremltools()
        from coremltools.proto import MIL_pb2, Model_pb2

        self._mil = MIL_pb2
        self.package = Path(package)
        self.emulate_fp16 = emulate_fp16
        model_file = root_model_file(self.package)
        self.spec = Model_pb2.Model()
        self.spec.ParseFromString(model_file.read_bytes())
        if self.spec.WhichOneof("Type") != "mlProgram":
            raise UnsupportedProgram(f"{self.package.name} is a {self.spec.WhichOneof('Type')} model, not an ML Program")
        self._model_dir = model_file.parent
        self._readers: dict[Path, Any] = {}
        function = self.spec.mlProgram.functions.get("main")
        if function is None:
            raise UnsupportedProgram(f"{self.package.name} has no 'main' function")
        block = function.block_specializations[function.opset]
        self.opset = function.opset
        self.output_names: list[str] = list(block.outputs)
        self.inputs = self._input_infos(function)
        self._consts: dict[str, Any] = {}
        self._ops: list[_Op] = []
        self._compile(block)
        self.is_fp16 = any(dt == "FLOAT16" for op in self._ops for dt in op.dtypes)
        self._batchable = True
        self._dead_after = self._last_uses()

    # -- loading -------------------------------------------------------------------------------

    def _input_infos(self, function: Any) -> list[InputInfo]:
        described = {f.name: f for f in self.spec.description.input}
        infos = []
        for inp in function.inputs:
            shape = tuple(int(d.constant.size) for d in inp.type.tensorType.dimensions)
            feature = described.get(inp.name)
            color = None
            if feature is not None and feature.type.WhichOneof("Type") == "imageType":
                color = _color_space(feature.type.imageType.colorSpace)
            infos.append(InputInfo(inp.name, shape, color))
        return infos

    def _compile(self, block: Any) -> None:
        unknown: dict[str, list[str]] = {}
        for proto_op in block.operations:
            name = _op_name(proto_op)
            if len(proto_op.blocks):
                raise UnsupportedProgram(f"op '{proto_op.type}' ({name}) has nested blocks: control flow is not supported")
            if proto_op.type == "const":
                self._consts[proto_op.outputs[0].name] = self._decode(proto_op.attributes["val"])
                continue
            if proto_op.type not in OPS:
                unknown.setdefault(proto_op.type, []).append(name)
                continue
            inputs = {param: self._bindings(param, arg) for param, arg in proto_op.inputs.items()}
            # iOS 16 constexpr ops carry their constant operands as attributes rather than inputs
            inputs.update({key: ("const", self._decode(attr)) for key, attr in proto_op.attributes.items() if key != "name"})
            dtypes = [self._mil.DataType.Name(o.type.tensorType.dataType) for o in proto_op.outputs]
            op = _Op(proto_op.type, name, inputs, [o.name for o in proto_op.outputs], dtypes)
            if op.type.startswith("constexpr_"):
                self._fold_constexpr(op)
            else:
                self._ops.append(op)
        if unknown:
            listed = ", ".join(f"'{t}' ({len(n)}x, e.g. {n[0]})" for t, n in sorted(unknown.items()))
            raise UnsupportedProgram(
                f"{self.package.name} uses MIL op(s) the reference executor does not implement: {listed}; "
                "it cannot check this package (Core ML itself runs only on macOS)"
            )

    def _last_uses(self) -> list[list[str]]:
        """For each op, the variables no later op reads: freed as the program runs, to bound memory."""
        last: dict[str, int] = {}
        for index, op in enumerate(self._ops):
            for bound in op.inputs.values():
                for kind, name in bound if isinstance(bound, list) else [bound]:
                    if kind == "var" and name not in self._consts:
                        last[name] = index
        dead: list[list[str]] = [[] for _ in self._ops]
        for name, index in last.items():
            dead[index].append(name)
        return dead

    def _bindings(self, param: str, argument: Any) -> Any:
        bound = []
        for binding in argument.arguments:
            if binding.WhichOneof("binding") == "name":
                bound.append(("var", binding.name))
            else:
                bound.append(("const", self._decode(binding.value)))
        return bound if param == "values" or len(bound) > 1 else bound[0]

    def _fold_constexpr(self, op: _Op) -> None:
        args = {k: self._resolve(v, {}) for k, v in op.inputs.items()}
        value = OPS[op.type](args, OpContext(batched=False))
        self._consts[op.outputs[0]] = self._round(value, op.dtypes[0])

    def _decode(self, value: Any) -> Any:
        kind = value.WhichOneof("value")
        if kind == "immediateValue":
            return self._decode_immediate(value.immediateValue, value.type)
        if kind == "blobFileValue":
            return self._decode_blob(value.blobFileValue, value.type)
        raise UnsupportedProgram(f"{self.package.name}: a constant has no value")

    def _decode_immediate(self, immediate: Any, vtype: Any) -> Any:
        kind = immediate.WhichOneof("value")
        if kind == "list":
            return [self._decode(v) for v in immediate.list.values]
        if kind == "tuple":
            return tuple(self._decode(v) for v in immediate.tuple.values)
        if kind != "tensor":
            raise UnsupportedProgram(f"{self.package.name}: {kind} constants are not supported")
        tensor, ttype = immediate.tensor, vtype.tensorType
        dtype = self._mil.DataType.Name(ttype.dataType)
        shape = [int(d.constant.size) for d in ttype.dimensions]
        field = tensor.WhichOneof("value")
        if field == "strings":
            values = list(tensor.strings.values)
            return values[0] if not shape and len(values) == 1 else values
        if dtype not in _NUMPY_DTYPES:
            raise UnsupportedProgram(f"{self.package.name}: {dtype} constants are not supported")
        if field == "bytes":
            array = np.frombuffer(tensor.bytes.values, dtype=_NUMPY_DTYPES[dtype])
        else:
            array = np.asarray(list(getattr(tensor, field).values) if field else [], dtype=_NUMPY_DTYPES[dtype])
        return _to_torch(array.reshape(shape))

    def _decode_blob(self, blob: Any, vtype: Any) -> torch.Tensor:
        from coremltools.libmilstoragepython import _BlobStorageReader

        dtype = self._mil.DataType.Name(vtype.tensorType.dataType)
        shape = [int(d.constant.size) for d in vtype.tensorType.dimensions]
        path = Path(blob.fileName.replace("@model_path", str(self._model_dir)))
        if dtype not in _BLOB_READERS:
            raise UnsupportedProgram(f"{self.package.name}: {dtype} weights are not supported")
        if path not in self._readers:
            if not path.is_file():
                raise ConvertError(f"{self.package.name} is incomplete: its weights file {path.name} is missing")
            self._readers[path] = _BlobStorageReader(str(path))
        array = np.asarray(getattr(self._readers[path], _BLOB_READERS[dtype])(int(blob.offset)))
        if dtype == "FLOAT16":
            array = array.view(np.float16)
        return _to_torch(array.reshape(shape))

    # -- running -------------------------------------------------------------------------------

    def run(
        self,
        feeds: dict[str, np.ndarray],
        *,
        outputs: Sequence[str] | None = None,
        observe: Observer | None = None,
        rewrite: Rewrite | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> dict[str, Any]:
        """Outputs for ``feeds`` (each input with a leading image axis N), concatenated over N.

        ``observe(name, tensor)`` sees every input and every float op output, batch by batch;
        ``rewrite(name, tensor)`` may replace a float op output before anything reads it (or return it as is).
        """
        wanted = list(outputs or self.output_names)
        count = self._check_feeds(feeds)
        results: dict[str, list[Any]] = {name: [] for name in wanted}
        for start in range(0, count, batch_size):
            chunk = {k: torch.from_numpy(np.ascontiguousarray(v[start : start + batch_size])).float() for k, v in feeds.items()}
            for name, value in self._run_chunk(chunk, wanted, observe, rewrite).items():
                results[name].append(value)
        return {name: _join(parts) for name, parts in results.items()}

    def _run_chunk(
        self, feeds: dict[str, torch.Tensor], wanted: list[str], observe: Observer | None, rewrite: Rewrite | None
    ) -> dict[str, Any]:
        size = next(iter(feeds.values())).shape[0]
        if size > 1 and self._batchable:
            try:
                return self._execute(feeds, wanted, observe, rewrite, batched=True)
            except NotBatchable:
                self._batchable = False
        singles = [self._execute({k: v[i : i + 1] for k, v in feeds.items()}, wanted, observe, rewrite, batched=False) for i in range(size)]
        return {name: _join([s[name] for s in singles]) for name in wanted}

    def _execute(
        self, feeds: dict[str, torch.Tensor], wanted: list[str], observe: Observer | None, rewrite: Rewrite | None, *, batched: bool
    ) -> dict[str, Any]:
        env: dict[str, Any] = dict(feeds)
        if observe is not None:
            for name, value in feeds.items():
                observe(name, value)
        ctx = OpContext(batched=batched)
        keep = set(wanted)
        with torch.no_grad():
            for op, dead in zip(self._ops, self._dead_after):
                args = {param: self._resolve(bound, env) for param, bound in op.inputs.items()}
                try:
                    result = OPS[op.type](args, ctx)
                except NotBatchable:
                    raise
                except Exception as exc:
                    raise ConvertError(f"reference MIL executor: op '{op.type}' ({op.name}) failed: {exc}") from exc
                values = result if isinstance(result, tuple) else (result,)
                for name, value, dtype in zip(op.outputs, values, op.dtypes):
                    value = self._round(value, dtype)
                    if rewrite is not None and dtype in _FLOAT_TYPES:
                        value = rewrite(name, value)
                    env[name] = value
                    if observe is not None and dtype in _FLOAT_TYPES:
                        observe(name, value)
                for name in dead:
                    if name not in keep:
                        env.pop(name, None)
        missing = [name for name in wanted if name not in env]
        if missing:
            raise ConvertError(f"{self.package.name} has no variable named {missing[0]!r}")
        return {name: env[name] for name in wanted}

    def _resolve(self, bound: Any, env: dict[str, Any]) -> Any:
        if isinstance(bound, list):
            return [self._resolve(b, env) for b in bound]
        kind, value = bound
        if kind == "const":
            return value
        if value in env:
            return env[value]
        return self._consts[value]

    def _round(self, value: Any, dtype: str) -> Any:
        if dtype == "FLOAT16" and self.emulate_fp16 and isinstance(value, torch.Tensor):
            return value.to(torch.float16).to(torch.float32)
        return value

    def _check_feeds(self, feeds: dict[str, np.ndarray]) -> int:
        expected = {i.name: i for i in self.inputs}
        if set(feeds) != set(expected):
            raise ConvertError(f"{self.package.name} takes inputs {sorted(expected)}, got {sorted(feeds)}")
        counts = set()
        for name, array in feeds.items():
            declared = expected[name].shape
            if tuple(array.shape[1:]) != declared[1:] or declared[0] != 1:
                raise ConvertError(
                    f"{self.package.name}: input {name!r} is {list(declared)}, got {len(array)} of {list(array.shape[1:])}: "
                    "wrong variant or input size?"
                )
            counts.add(len(array))
        if len(counts) != 1:
            raise ConvertError("every input needs the same number of samples")
        return counts.pop()

    # -- image classifiers -------------------------------------------------------------------

    def image_feeds(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 RGB (N, H, W, 3) pixels as the program's image input (float 0-255, NCHW, its channel order)."""
        images = [i for i in self.inputs if i.color_space is not None]
        if len(self.inputs) != 1 or not images:
            raise ConvertError(f"{self.package.name} does not take a single image input")
        info = images[0]
        _, channels, height, width = info.shape
        if pixels.ndim != 4 or pixels.shape[1:] != (height, width, 3):
            raise ConvertError(
                f"{self.package.name} takes {width}x{height} RGB images, got pixels of shape {list(pixels.shape)}: "
                "wrong variant or input size?"
            )
        if channels != 3 or info.color_space not in ("RGB", "BGR"):
            raise UnsupportedProgram(f"{self.package.name}: {info.color_space} image inputs are not supported")
        x = pixels.astype(np.float32).transpose(0, 3, 1, 2)
        if info.color_space == "BGR":
            x = x[:, ::-1]
        return {info.name: np.ascontiguousarray(x)}

    def logits_name(self) -> str:
        """The variable feeding the classifier's softmax: what PyTorch's logits are compared with."""
        producers = {out: op for op in self._ops for out in op.outputs}
        classify = next((op for op in self._ops if op.type == "classify"), None)
        if classify is None:
            raise ConvertError(f"{self.package.name} is not a classifier (no classify op)")
        var = classify.inputs["probabilities"][1]
        while var in producers and producers[var].type in ("cast", "dequantize", "quantize"):
            var = producers[var].inputs["x" if producers[var].type == "cast" else "input"][1]
        op = producers.get(var)
        if op is None or op.type != "softmax":
            raise ConvertError(f"{self.package.name}: the classifier's probabilities do not come from a softmax")
        return op.inputs["x"][1]

    def logits(self, pixels: np.ndarray, *, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Pre-softmax logits (N, classes) of an image classifier on uint8 RGB pixels."""
        name = self.logits_name()
        out = self.run(self.image_feeds(pixels), outputs=[name], batch_size=batch_size)[name]
        return np.asarray(out, dtype=np.float32).reshape(len(pixels), -1)

    def concat_groups(self) -> list[list[str]]:
        """Input and output variable names of every concat (they share one range under W8A8)."""
        groups = []
        for op in self._ops:
            if op.type == "concat":
                names = [b[1] for b in op.inputs["values"] if b[0] == "var"]
                groups.append([*names, *op.outputs])
        return groups

    def quantized_inputs(self) -> set[str]:
        """Variables a ``quantize`` op reads: the activations a W8A8 program holds in int8."""
        return {op.inputs["input"][1] for op in self._ops if op.type == "quantize" and op.inputs["input"][0] == "var"}

    def domain_factors(self) -> dict[str, float]:
        """Variables a W8A8 program holds rescaled, by the factor: the value is ``factor`` × the float model's.

        coremltools may give a ``dequantize`` another scale than its ``quantize`` (an add's inputs in a
        common scale, for one); the program stays exact, but between such a pair and the next
        ``quantize`` the values are scaled. Scale-equivariant ops (add, relu, concat, pooling, shape
        ops) carry a shared factor on; anything else ends it.
        """
        factors: dict[str, float] = {}
        quantized: dict[str, tuple[float, float]] = {}  # int var -> (scale, factor of the quantized float var)
        carries = {"add", "sub", "relu", "concat", "avg_pool", "max_pool", "reshape", "transpose", "slice_by_index", "split"}

        def scalar(bound: Any) -> float | None:
            value = bound[1] if bound[0] == "const" else self._consts.get(bound[1])
            return float(value.reshape(-1)[0]) if isinstance(value, torch.Tensor) and value.numel() == 1 else None

        for op in self._ops:
            if op.type == "quantize":
                scale = scalar(op.inputs["scale"])
                if scale:
                    quantized[op.outputs[0]] = (scale, factors.get(op.inputs["input"][1], 1.0))
            elif op.type == "dequantize" and op.inputs["input"][1] in quantized:
                scale, before = quantized[op.inputs["input"][1]]
                d = scalar(op.inputs["scale"])
                if d and abs(d / scale * before - 1.0) > 1e-6:
                    factors[op.outputs[0]] = d / scale * before
            elif op.type in carries:
                bound = op.inputs.get("x", op.inputs.get("values"))
                operands = [*(bound if isinstance(bound, list) else [bound]), *([op.inputs["y"]] if op.type in ("add", "sub") else [])]
                if op.type in ("add", "sub") and any(b[0] != "var" or b[1] in self._consts for b in operands):
                    continue  # a constant term does not scale with the variable one
                found = [factors.get(b[1], 1.0) for b in operands if isinstance(b, tuple) and b[0] == "var"]
                # the inputs' factors agree to fp16 rounding of the scales they come from
                if found and max(found) <= min(found) * 1.01 and abs(found[0] - 1.0) > 1e-3:
                    for out in op.outputs:
                        factors[out] = float(np.mean(found))
        return factors

    def op_types(self) -> list[str]:
        """Types of the non-const ops in program order (constexpr ops are folded at load)."""
        return [op.type for op in self._ops]


def root_model_file(package: Path) -> Path:
    manifest = package / "Manifest.json"
    if not manifest.is_file():
        raise ConvertError(f"{package} is not an .mlpackage (no Manifest.json)")
    data = json.loads(manifest.read_text())
    item = data["itemInfoEntries"][data["rootModelIdentifier"]]
    path = package / "Data" / item["path"]
    if not path.is_file():
        raise ConvertError(f"{package} is incomplete: {item['path']} is missing")
    return path


def _op_name(proto_op: Any) -> str:
    attr = proto_op.attributes.get("name")
    if attr is not None and attr.immediateValue.tensor.strings.values:
        return attr.immediateValue.tensor.strings.values[0]
    return proto_op.outputs[0].name if proto_op.outputs else proto_op.type


def _color_space(enum_value: int) -> str:
    return {10: "GRAYSCALE", 20: "RGB", 30: "BGR", 40: "GRAYSCALE_FLOAT16"}.get(enum_value, str(enum_value))


def _to_torch(array: np.ndarray) -> torch.Tensor:
    if array.dtype.kind == "f":
        return torch.from_numpy(array.astype(np.float32))
    if array.dtype.kind == "b":
        return torch.from_numpy(array.copy())
    return torch.from_numpy(array.astype(np.int64))


def _join(parts: list[Any]) -> Any:
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts).numpy() if parts[0].dim() else torch.stack(parts).numpy()
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [item for part in parts for item in part]
