"""Whether the LiteRT GPU delegate takes every op of a ``.tflite`` graph, measured offline.

The check is TensorFlow's own: ``tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)``.
``analyzer.py`` only prints, from Python, the string its C++ wrapper returns; the wrapper is called
directly here (it links nothing of TensorFlow, so the slow ``import tensorflow`` is skipped), and the
public call with ``redirect_stdout`` is the fallback. Under the report's line for each op it cannot
delegate it writes ``GPU COMPATIBILITY WARNING: <reason>``; :func:`parse_report` counts those.

TensorFlow 2.19 (this toolchain's pin) ships the analyzer with the GPU check taken out
(tensorflow/tensorflow#77042): it calls every model compatible. So no result is trusted until the
same analyzer has flagged a probe graph holding a custom op that no delegate knows; an analyzer that
passes the probe raises :class:`GpuCheckUnavailable` instead of reporting a false "all supported".
``$SHVIT_TFLITE_ANALYZER`` may name a ``_pywrap_analyzer_wrapper`` extension from a TensorFlow release
that still checks (2.17's is self-contained): it is then used in place of the installed one.

The analyzer checks one op at a time, so in an fp16 model (float16 weights, each behind a
DEQUANTIZE to float32) it counts every convolution's weights as a runtime input and flags it. The
delegate itself does not see that graph: its FP16GraphPartitionHelper folds each DEQUANTIZE of a
constant into the consumer, which then takes constant weights (and delegates the DEQUANTIZE too).
:func:`delegate_view` makes that fold on a copy, and the copy is what gets checked.

TensorFlow's import is slow and noisy, so CLIs call :func:`gpu_compatibility_of`, which runs the
check in a child process (:func:`convert.io.child.run_child`).
"""
from __future__ import annotations

import contextlib
import functools
import importlib.machinery
import importlib.util
import io
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from convert.errors import ConvertError, RuntimeCrash

ANALYZER_ENV = "SHVIT_TFLITE_ANALYZER"
CHECK_TIMEOUT_S = 300.0
PROBE_OP = "ShvitGpuProbe"

_OP_LINE = re.compile(r"^\s+Op#(\d+) ([^(\s]+)\(")
_SUBGRAPH_LINE = re.compile(r"^Subgraph#(\d+)\b")
_WARNING = "GPU COMPATIBILITY WARNING:"
_SUBGRAPH_SUMMARY = re.compile(r"Subgraph#\d+ has GPU delegate compatibility issues")
_RUNTIME_VERSION = re.compile(r"TFLite runtime version (\d[\w.\-]*\d)")

Analyze = Callable[[bytes], str]


class GpuCheckUnavailable(ConvertError):
    """No analyzer here that really checks GPU delegate compatibility."""


@dataclass(frozen=True)
class GpuCompatibility:
    """What the GPU delegate would leave on the CPU: ``incompatible`` of ``total_ops`` ops.

    ``ops`` are the distinct names of the incompatible ops in graph order, ``reasons`` the
    analyzer's distinct ``NAME: reason`` lines, ``analyzer`` which checker produced them, and
    ``folded_dequantize`` how many fp16 DEQUANTIZE ops were checked as folded (:func:`delegate_view`).
    """

    incompatible: int
    ops: tuple[str, ...]
    total_ops: int
    reasons: tuple[str, ...] = ()
    analyzer: str = ""
    folded_dequantize: int = 0

    @property
    def fully_compatible(self) -> bool:
        return self.incompatible == 0

    def summary(self) -> str:
        """``all N ops supported`` or ``K of N ops not supported: A, B``."""
        if self.fully_compatible:
            return f"all {self.total_ops} ops supported"
        return f"{self.incompatible} of {self.total_ops} ops not supported: {', '.join(self.ops)}"

    def as_dict(self) -> dict[str, Any]:
        return {"checked": True, "incompatible": self.incompatible, "total_ops": self.total_ops,
                "ops": list(self.ops), "reasons": list(self.reasons), "analyzer": self.analyzer,
                "folded_dequantize": self.folded_dequantize}


def parse_report(text: str, *, analyzer: str = "") -> GpuCompatibility:
    """The analyzer's printed report as counts: a warning line belongs to the op line above it."""
    total = 0
    subgraph = 0
    current: tuple[int, int, str] | None = None
    flagged: dict[tuple[int, int], str] = {}
    reasons: dict[str, None] = {}
    for line in text.splitlines():
        if (m := _SUBGRAPH_LINE.match(line)) is not None:
            subgraph, current = int(m[1]), None
        elif (m := _OP_LINE.match(line)) is not None:
            total += 1
            current = (subgraph, int(m[1]), m[2])
        elif line.startswith(_WARNING) and not _SUBGRAPH_SUMMARY.search(line) and current is not None:
            flagged[current[:2]] = current[2]
            reasons[f"{current[2]}: {line.removeprefix(_WARNING).strip()}"] = None
    names = tuple(dict.fromkeys(flagged.values()))
    return GpuCompatibility(len(flagged), names, total, tuple(reasons), analyzer or _describe(text))


def _describe(text: str) -> str:
    m = _RUNTIME_VERSION.search(text)
    return f"TFLite ModelAnalyzer (runtime {m[1]})" if m else "TFLite ModelAnalyzer"


def gpu_compatibility(model_content: bytes) -> GpuCompatibility:
    """GPU delegate coverage of a TFLite flatbuffer, in this process (CLIs: :func:`gpu_compatibility_of`)."""
    analyze, name = _analyzer()
    if not _checks_gpu(analyze):
        raise GpuCheckUnavailable(
            f"{name} does not check GPU delegate compatibility (it passes a graph of an unknown custom op; "
            f"TensorFlow 2.19 dropped the check, tensorflow/tensorflow#77042): set ${ANALYZER_ENV} to the "
            "_pywrap_analyzer_wrapper extension of a TensorFlow release that still has it (2.17's works)"
        )
    view, folded = delegate_view(bytes(model_content))
    text = analyze(view)
    result = parse_report(text)
    if result.total_ops == 0:
        raise ConvertError(f"{name} could not read the model: {text.strip().splitlines()[0][:200] if text.strip() else 'no report'}")
    return replace(result, total_ops=result.total_ops + folded, folded_dequantize=folded)


def delegate_view(model_content: bytes) -> tuple[bytes, int]:
    """The model as the GPU delegate partitions it: each DEQUANTIZE of a constant float16 tensor
    replaced by its float32 result as a constant. Returns the bytes and how many were folded."""
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_content), 0)
    dequantize = {i for i, code in enumerate(model.operatorCodes or [])
                  if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE}
    folded = 0
    for graph in model.subgraphs or []:
        kept = []
        for op in graph.operators or []:
            source = graph.tensors[op.inputs[0]] if op.opcodeIndex in dequantize and len(op.inputs) == 1 else None
            data = model.buffers[source.buffer].data if source is not None and source.type == schema.TensorType.FLOAT16 else None
            if data is None or len(data) == 0:
                kept.append(op)
                continue
            constant = schema.BufferT()
            constant.data = np.frombuffer(np.frombuffer(bytes(data), dtype="<f2").astype("<f4").tobytes(), dtype=np.uint8)
            model.buffers.append(constant)
            graph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
            folded += 1
        graph.operators = kept
    if not folded:
        return model_content, 0
    builder = flatbuffers.Builder(len(model_content) * 3 + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), folded


@functools.lru_cache(maxsize=1)
def _analyzer() -> tuple[Analyze, str]:
    """The report function (model bytes → text) and its name.

    ``$SHVIT_TFLITE_ANALYZER`` if set; else the wrapper behind TensorFlow's analyzer, loaded on its
    own (it links nothing of TensorFlow, so the slow ``import tensorflow`` is skipped); else the
    public ``tf.lite.experimental.Analyzer.analyze`` with its printed report captured.
    """
    path = os.environ.get(ANALYZER_ENV)
    if path:
        if "tensorflow" in sys.modules:  # two builds of the wrapper in one process corrupt its heap at exit
            raise GpuCheckUnavailable(f"${ANALYZER_ENV} cannot be loaded beside an imported TensorFlow: "
                                      "call gpu_compatibility_of, which checks in a child process")
        module = _load_extension(Path(path), name=_WRAPPER.rpartition(".")[2])
        return (lambda data: str(module.ModelAnalyzer(data, False, True))), f"the analyzer in {path}"
    module, version = _tensorflow_wrapper()
    if module is not None:
        return (lambda data: str(module.ModelAnalyzer(data, False, True))), f"TensorFlow {version}'s tf.lite.experimental.Analyzer"
    import tensorflow as tf

    def analyze(data: bytes) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            tf.lite.experimental.Analyzer.analyze(model_content=data, gpu_compatibility=True)
        return out.getvalue()

    return analyze, f"TensorFlow {tf.__version__}'s tf.lite.experimental.Analyzer"


_WRAPPER = "tensorflow.lite.python.analyzer_wrapper._pywrap_analyzer_wrapper"


def _tensorflow_wrapper() -> tuple[Any, str]:
    """Installed TensorFlow's analyzer extension (None if not found) and version, without importing TensorFlow.

    It is registered under its own module name, so a later ``import tensorflow`` reuses it
    instead of loading the library a second time.
    """
    from importlib import metadata

    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None:
        raise GpuCheckUnavailable("TensorFlow is not installed: the GPU delegate check uses its TFLite analyzer")
    try:
        version = metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        version = "?"
    if "tensorflow" in sys.modules:
        return importlib.import_module(_WRAPPER), version
    found = sorted((Path(spec.origin).parent / "lite" / "python" / "analyzer_wrapper").glob("_pywrap_analyzer_wrapper*.so"))
    if not found:
        return None, version
    module = _load_extension(found[0], name=_WRAPPER)
    sys.modules[_WRAPPER] = module
    return module, version


def _load_extension(path: Path, *, name: str) -> Any:
    if not path.is_file():
        raise GpuCheckUnavailable(f"${ANALYZER_ENV} names {path}, which is not a file: point it at a _pywrap_analyzer_wrapper*.so")
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    try:
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except ImportError as exc:
        raise GpuCheckUnavailable(f"cannot load the TFLite analyzer {path} ({exc})") from None
    if not hasattr(module, "ModelAnalyzer"):
        raise GpuCheckUnavailable(f"{path} has no ModelAnalyzer: point ${ANALYZER_ENV} at a _pywrap_analyzer_wrapper*.so")
    return module


def _checks_gpu(analyze: Analyze) -> bool:
    return parse_report(analyze(probe_model())).incompatible >= 1


@functools.lru_cache(maxsize=1)
def probe_model() -> bytes:
    """A one-op TFLite graph whose op is a custom op no delegate has: any real GPU check rejects it."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: str) -> Any:
        t = schema.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, 4], schema.TensorType.FLOAT32, 0, name
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = PROBE_OP, 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators, graph.name = [tensor("x"), tensor("y")], [0], [1], [op], "main"
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], [schema.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def gpu_compatibility_of(path: Path, *, timeout_s: float = CHECK_TIMEOUT_S) -> GpuCompatibility:
    """:func:`gpu_compatibility` of a ``.tflite`` file, run in a child so the caller never imports TensorFlow.

    Raises :class:`GpuCheckUnavailable` where no analyzer here checks, :class:`RuntimeCrash` if it dies.
    """
    from convert.io.child import ChildFailure, run_child

    name = Path(path).name
    try:
        proc = run_child(["convert.tflite.gpu_compat", str(path)], timeout_s=timeout_s)
    except ChildFailure as exc:
        raise RuntimeCrash(f"{name}: {exc.describe('the GPU compatibility check', 'while analysing the model')}") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeCrash(f"{name}: the GPU compatibility check printed no result")
    data = json.loads(lines[-1])
    if "unavailable" in data:
        raise GpuCheckUnavailable(data["unavailable"])
    return GpuCompatibility(int(data["incompatible"]), tuple(data["ops"]), int(data["total_ops"]),
                            tuple(data["reasons"]), str(data["analyzer"]), int(data["folded_dequantize"]))


def _child(path: str) -> int:
    from convert.io.child import report_child_error

    try:
        result = gpu_compatibility(Path(path).read_bytes())
    except GpuCheckUnavailable as exc:
        print(json.dumps({"unavailable": str(exc)}))
        return 0
    except Exception as exc:  # reported to the parent as one line
        report_child_error(exc)
        return 1
    record = result.as_dict()
    record.pop("checked")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    from convert.io.scratch import exit_with_parent

    exit_with_parent()
    sys.exit(_child(sys.argv[1]))
