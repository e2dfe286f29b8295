"""GPU delegate coverage (convert.tflite.gpu_compat): LiteRT's per-op rules on tiny graphs built here
with the flatbuffer schema's object API (no TensorFlow), and its place in the export sidecar and reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as tfl

from convert.errors import ConvertError
from convert.tflite.gpu_compat import RULES, GpuCompatibility, gpu_compatibility, gpu_compatibility_of

ROOT = Path(__file__).resolve().parents[1]
F32, F16, I32, I16 = tfl.TensorType.FLOAT32, tfl.TensorType.FLOAT16, tfl.TensorType.INT32, tfl.TensorType.INT16


def T(shape: list[int], dtype: int = F32, data: np.ndarray | None = None) -> tuple:
    """A tensor: shape, dtype and, for a constant, its values."""
    return shape, dtype, data


def Op(op: str, inputs: list[int], outputs: list[int], options: object = None, *, version: int = 1) -> tuple:
    """An operator: a builtin name (``CONV_2D``) or a custom op name, tensor indices, builtin options (``...OptionsT``)."""
    return op, inputs, outputs, options, version


def build(tensors: list[tuple], ops: list[tuple], *, inputs: list[int] | None = None, outputs: list[int] | None = None) -> bytes:
    """A one-subgraph .tflite flatbuffer (file identifier TFL3)."""
    model = tfl.ModelT()
    model.version, model.buffers, model.operatorCodes = 3, [tfl.BufferT()], []
    graph = tfl.SubGraphT()
    graph.tensors, graph.operators, graph.name = [], [], "main"
    for i, (shape, dtype, data) in enumerate(tensors):
        t = tfl.TensorT()
        t.shape, t.type, t.name, t.buffer = list(shape), dtype, f"t{i}", 0
        if data is not None:
            buffer = tfl.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            model.buffers.append(buffer)
            t.buffer = len(model.buffers) - 1
        graph.tensors.append(t)
    codes: dict[tuple[str, int], int] = {}
    builtin = vars(tfl.BuiltinOperator)
    for name, ins, outs, options, version in ops:
        if (name, version) not in codes:
            code = tfl.OperatorCodeT()
            number = builtin.get(name, tfl.BuiltinOperator.CUSTOM)
            code.builtinCode, code.deprecatedBuiltinCode, code.version = number, min(number, 127), version
            if number == tfl.BuiltinOperator.CUSTOM:
                code.customCode = name
            codes[(name, version)] = len(model.operatorCodes)
            model.operatorCodes.append(code)
        op = tfl.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = codes[(name, version)], ins, outs
        if options is not None:
            op.builtinOptionsType = getattr(tfl.BuiltinOptions, type(options).__name__.removesuffix("T"))
            op.builtinOptions = options
        graph.operators.append(op)
    produced = {o for _, _, outs, _, _ in ops for o in outs}
    consumed = {i for _, ins, _, _, _ in ops for i in ins}
    graph.inputs = inputs if inputs is not None else [i for i in sorted(consumed - produced) if i >= 0 and tensors[i][2] is None]
    graph.outputs = outputs if outputs is not None else sorted(produced - consumed)
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def options(kind: str, **fields: object) -> object:
    opts = getattr(tfl, f"{kind}OptionsT")()
    for key, value in fields.items():
        setattr(opts, key, value)
    return opts


def conv_options(**fields: object) -> object:
    return options("Conv2D", strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1, **fields)


def weights(*shape: int, dtype: str = "<f4", seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def compatible_graph() -> bytes:
    """CONV_2D (constant weights, fused RELU) → ADD (constant) → MEAN (constant axes) → FULLY_CONNECTED."""
    return build(
        [
            T([1, 8, 8, 4]),
            T([8, 3, 3, 4], data=weights(8, 3, 3, 4)),
            T([8], data=weights(8, seed=1)),
            T([1, 8, 8, 8]),
            T([8], data=weights(8, seed=2)),
            T([1, 8, 8, 8]),
            T([2], I32, np.array([1, 2], "<i4")),
            T([1, 8]),
            T([10, 8], data=weights(10, 8, seed=3)),
            T([1, 10]),
        ],
        [
            Op("CONV_2D", [0, 1, 2], [3], conv_options(fusedActivationFunction=tfl.ActivationFunctionType.RELU)),
            Op("ADD", [3, 4], [5], options("Add")),
            Op("MEAN", [5, 6], [7], options("Reducer")),
            Op("FULLY_CONNECTED", [7, 8, -1], [9], options("FullyConnected")),
        ],
    )


def fp16_conv_graph(*, constant: bool = True) -> bytes:
    """CONV_2D whose weights and bias are DEQUANTIZEs of float16 tensors (constants, as a TFLite fp16 export has them)."""
    w16, b16 = weights(8, 3, 3, 4, dtype="<f2"), weights(8, dtype="<f2", seed=1)
    return build(
        [
            T([1, 8, 8, 4]),
            T([8, 3, 3, 4], F16, w16 if constant else None),
            T([8, 3, 3, 4]),
            T([8], F16, b16 if constant else None),
            T([8]),
            T([1, 8, 8, 8]),
        ],
        [
            Op("DEQUANTIZE", [1], [2]),
            Op("DEQUANTIZE", [3], [4]),
            Op("CONV_2D", [0, 2, 4], [5], conv_options()),
        ],
    )


def one_op(op: str, *, extra: list[tuple] | None = None) -> bytes:
    """RELU (always supported) then ``op`` on a [1, 10] float input: only ``op`` may be flagged."""
    return build([T([1, 10]), T([1, 10]), *(extra or [T([1, 10])])], [Op("RELU", [0], [1]), Op(op, [1], [2])])


def check(data: bytes, tmp_path: Path, name: str = "model") -> GpuCompatibility:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    result = gpu_compatibility_of(path)
    assert result == gpu_compatibility(data) and result.analyzer == RULES
    return result


def assert_flagged(result: GpuCompatibility, op: str, reason: str, *, total: int, count: int = 1) -> None:
    assert result.incompatible == count and result.ops == (op,) and result.total_ops == total, result
    assert any(r.startswith(f"{op}: ") and reason in r for r in result.reasons), result.reasons
    assert result.summary() == f"{count} of {total} ops not supported: {op}"
    assert result.line() == f"GPU delegate: {count} of {total} ops not supported ({op})"


# --------------------------------------------------------------------------------------------- rules


def test_fully_compatible_graph_gives_zero(tmp_path: Path) -> None:
    result = check(compatible_graph(), tmp_path)
    assert (result.incompatible, result.ops, result.reasons, result.total_ops) == (0, (), (), 4), result
    assert result.summary() == "all 4 ops supported" and result.line() == "GPU delegate: 0 of 4 ops not supported"
    assert result.as_dict() == {
        "checked": True,
        "incompatible": 0,
        "total_ops": 4,
        "ops": [],
        "reasons": [],
        "analyzer": RULES,
        "folded_dequantize": 0,
    }


def test_topk_v2_is_flagged(tmp_path: Path) -> None:
    data = build(
        [T([1, 10]), T([1, 10]), T([], I32, np.array(3, "<i4")), T([1, 3]), T([1, 3], I32)],
        [Op("RELU", [0], [1]), Op("TOPK_V2", [1, 2], [3, 4])],
    )
    assert_flagged(check(data, tmp_path), "TOPK_V2", "no GPU kernel", total=2)


def test_flex_op_is_flagged(tmp_path: Path) -> None:
    assert_flagged(check(one_op("FlexMatrixInverse"), tmp_path), "FlexMatrixInverse", "Flex", total=2)


def test_unknown_custom_op_is_flagged(tmp_path: Path) -> None:
    assert_flagged(check(one_op("ShvitMadeUpOp"), tmp_path), "ShvitMadeUpOp", "custom op with no GPU kernel", total=2)


def test_custom_op_the_delegate_knows_is_not_flagged(tmp_path: Path) -> None:
    data = build([T([1, 8, 8, 4]), T([1, 8, 8, 2]), T([1, 8, 8, 4])], [Op("Resampler", [0, 1], [2])])
    assert check(data, tmp_path).incompatible == 0


def test_fp16_weights_are_checked_as_the_delegate_folds_them(tmp_path: Path) -> None:
    result = check(fp16_conv_graph(), tmp_path)
    assert (result.incompatible, result.folded_dequantize, result.total_ops) == (0, 2, 3), result
    # The same graph with float16 *runtime* inputs is not folded: CONV_2D then has 3 runtime inputs.
    unfolded = check(fp16_conv_graph(constant=False), tmp_path, "runtime")
    assert unfolded.folded_dequantize == 0
    assert_flagged(unfolded, "CONV_2D", "expects 1 or 2 runtime inputs, node has 3", total=3)


@pytest.mark.parametrize(
    ("data", "op", "reason"),
    [
        (build([T([1, 2, 2, 2, 4]), T([1, 2, 2, 2, 4])], [Op("RELU", [0], [1])]), "RELU", "rank 5"),
        (build([T([1, 8, 8, 4]), T([2], I32), T([1, 4])], [Op("MEAN", [0, 1], [2], options("Reducer"))]), "MEAN", "constant input"),
        (
            build([T([1, 8, 8, 4]), T([2], data=np.array([1, 2], "<f4")), T([1, 4])], [Op("SUM", [0, 1], [2], options("Reducer"))]),
            "SUM",
            "axes must be int32",
        ),
        (
            build(
                [T([1, 8, 8, 4]), T([8, 3, 3, 4], data=weights(8, 3, 3, 4)), T([1, 8, 8, 8])],
                [Op("CONV_2D", [0, 1], [2], conv_options(fusedActivationFunction=tfl.ActivationFunctionType.SIGN_BIT))],
            ),
            "CONV_2D",
            "SIGN_BIT",
        ),
        (
            build(
                [T([1, 8, 8, 4]), T([8, 3, 3, 4], data=weights(8, 3, 3, 4)), T([1, 8, 8, 8])],
                [Op("CONV_2D", [0, 1], [2], options("Conv2D", strideH=0, strideW=1, dilationHFactor=1, dilationWFactor=1))],
            ),
            "CONV_2D",
            "strides must be positive",
        ),
        (build([T([1, 10]), T([1, 10]), T([1, 10])], [Op("ADD", [0, 1], [2], options("Add"), version=4)]), "ADD", "op version 4"),
        (build([T([1, 10], I16), T([1, 10], I16), T([1, 10], I16)], [Op("ADD", [0, 1], [2], options("Add"))]), "ADD", "input 0 is int16"),
        (build([T([1, 4, 4, 3]), T([4, 5]), T([1, 4, 4, 3])], [Op("ADD", [0, 1], [2], options("Add"))]), "ADD", "cannot broadcast"),
        (build([T([1, 10]), T([1, 10])], [Op("SOFTMAX", [0], [1], options("Softmax", beta=2.0))]), "SOFTMAX", "beta 2.0"),
        (
            build(
                [
                    T([1, 8, 8, 4]),
                    T([4], I32, np.array([0, 0, 0, 0], "<i4")),
                    T([4], I32, np.array([1, 8, 8, 4], "<i4")),
                    T([4], I32, np.array([1, 1, 1, 1], "<i4")),
                    T([8, 8, 4]),
                ],
                [Op("STRIDED_SLICE", [0, 1, 2, 3], [4], options("StridedSlice", shrinkAxisMask=1))],
            ),
            "STRIDED_SLICE",
            "shrinkAxisMask",
        ),
        (
            build([T([1, 10]), T([1, 10]), T([1, 10], tfl.TensorType.BOOL)], [Op("GREATER", [0, 1], [2])]),
            "GREATER",
            "must feed exactly one CAST/SELECT",
        ),
    ],
    ids=[
        "rank-5",
        "runtime-axes",
        "float-axes",
        "sign-bit",
        "zero-stride",
        "op-version",
        "int16",
        "broadcast",
        "softmax-beta",
        "shrink-axis",
        "lone-comparison",
    ],
)
def test_per_op_constraints(data: bytes, op: str, reason: str, tmp_path: Path) -> None:
    assert_flagged(check(data, tmp_path), op, reason, total=1)


def test_each_incompatible_op_is_counted_and_named_once(tmp_path: Path) -> None:
    data = build(
        [T([1, 10]), T([1, 10]), T([1, 10]), T([1, 10]), T([1, 10])],
        [Op("ShvitMadeUpOp", [0], [1]), Op("RELU", [1], [2]), Op("ShvitMadeUpOp", [2], [3]), Op("FlexErf", [3], [4])],
    )
    result = check(data, tmp_path)
    assert (result.incompatible, result.ops, result.total_ops) == (3, ("ShvitMadeUpOp", "FlexErf"), 4), result
    assert len(result.reasons) == 2


def test_a_file_that_is_not_tflite_is_a_convert_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ConvertError, match=r"broken\.tflite: not a TFLite flatbuffer"):
        gpu_compatibility_of(path)


def test_the_check_never_imports_tensorflow(tmp_path: Path) -> None:
    path = tmp_path / "topk.tflite"
    path.write_bytes(one_op("TOPK_V2"))
    script = (
        "import json, sys\nfrom convert.tflite.gpu_compat import gpu_compatibility_of\n"
        "r = gpu_compatibility_of(sys.argv[1])\n"
        "print(json.dumps({'ops': list(r.ops), 'tensorflow': 'tensorflow' in sys.modules}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"ops": ["TOPK_V2"], "tensorflow": False}


# ------------------------------------------------------------------------------------ where it shows


def test_shvit_check_and_bench_print_one_gpu_line_per_tflite_artifact(tmp_path: Path) -> None:
    from convert.bench.output import format_table as bench_table
    from convert.bench.run import BenchRow
    from convert.validate.report import ArtifactResult, CheckReport, as_json, format_table

    coverage = check(one_op("TOPK_V2"), tmp_path)
    tflite = ArtifactResult(tmp_path / "m.tflite", "tflite", "fp32", "sidecar", "pass", gpu_delegate=coverage)
    onnx = ArtifactResult(tmp_path / "m.onnx", "onnx", "fp32", "sidecar", "pass")
    report = CheckReport(
        reference={"variant": "s1", "input_size": 224, "num_classes": 1000, "weights": "w", "runtime": "PyTorch"},
        images={"description": "generated"},
        reference_accuracy=None,
        artifacts=[tflite, onnx],
    )
    lines = format_table(report)
    assert "  m.tflite: GPU delegate: 1 of 2 ops not supported (TOPK_V2)" in lines
    assert not any("m.onnx: GPU" in line for line in lines)
    artifacts = as_json(report)["artifacts"]
    assert artifacts[0]["gpu_delegate"]["ops"] == ["TOPK_V2"] and artifacts[1]["gpu_delegate"] is None
    row = BenchRow("s1", "tflite fp32", "tflite", "fp32", "ours", "exported", artifact=tflite.path, check=tflite)
    assert bench_table([row], labelled=False)[-1] == "SHViT-S1 tflite fp32: GPU delegate: 1 of 2 ops not supported (TOPK_V2)"


def test_the_checker_asks_the_tflite_target(tmp_path: Path) -> None:
    from convert import targets
    from convert.validate.checker import _gpu_delegate

    path = tmp_path / "m.tflite"
    path.write_bytes(compatible_graph())
    notes: list[str] = []
    assert _gpu_delegate(targets.get("tflite"), path, notes).line() == "GPU delegate: 0 of 4 ops not supported" and not notes
    path.write_bytes(b"garbage!")
    assert _gpu_delegate(targets.get("tflite"), path, notes) is None and notes == [
        "GPU delegate: not checked: m.tflite: not a TFLite flatbuffer (no TFL3 identifier)"
    ]
    assert _gpu_delegate(targets.get("onnx"), tmp_path / "m.onnx", notes) is None


@pytest.mark.slow
def test_tflite_export_records_gpu_delegate_coverage(tiny, tmp_path: Path, capsys) -> None:
    from convert.cli.convert import main as convert_main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        convert_main(
            [
                "--variant",
                "auto",
                "--target",
                "tflite",
                "--precision",
                "fp32",
                "--weights",
                str(tiny.checkpoint),
                "--labels",
                str(tiny.labels_file),
                "--input-size",
                str(tiny.input_size),
                "--images",
                str(tiny.images_dir),
                "--out",
                str(out),
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 0, err
    artifact = next(out.glob("*.tflite"))
    record = json.loads((out / (artifact.name + ".json")).read_text())["export"]["gpu_delegate"]
    assert record == gpu_compatibility_of(artifact).as_dict()
    assert record["checked"] and record["incompatible"] == 0 and record["total_ops"] > 0 and record["analyzer"] == RULES, record
    lines = [line for line in err.splitlines() if line.startswith("  GPU delegate: ")]
    assert lines == [f"  GPU delegate: all {record['total_ops']} ops supported ({RULES})"], err
