"""The reference MIL executor: every op it implements against PyTorch, fp16 emulation, refusals.

Programs are written with coremltools' own MIL builder and saved as real ``.mlpackage``s, so each
test goes through the same spec + weight.bin reading the parity checker relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close, recompute_bn_stats

import shvit
from convert.coreml.ctimport import import_coremltools, quiet
from convert.coreml.mil_executor import MILExecutor, UnsupportedProgram
from convert.errors import ConvertError
from shvit.config import SHViTConfig

ct = import_coremltools()
from coremltools.converters.mil import Builder as mb  # noqa: E402

BATCH = 2  # the programs declare batch 1: the executor must run several images at once correctly
RNG = np.random.default_rng(0)


def _w(*shape: int, scale: float = 0.3) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


W_CONV = _w(16, 8, 3, 3)
B_CONV = _w(16)
W_DW = _w(8, 1, 3, 3)
W_PW = _w(4, 8, 1, 1)
W_LIN, B_LIN = _w(6, 12), _w(6)
CHAN = (np.abs(_w(8, 1, 1)) + 0.5).astype(np.float32)
GAMMA12, BETA12 = _w(12) + 1.0, _w(12)
GAMMA8, BETA8, MEAN8, VAR8 = _w(8) + 1.0, _w(8), _w(8), np.abs(_w(8)) + 0.5


def _save(tmp: Path, program, target, name: str) -> Path:
    with quiet():
        model = ct.convert(
            program,
            convert_to="mlprogram",
            minimum_deployment_target=target,
            compute_precision=ct.precision.FLOAT32,
            pass_pipeline=ct.PassPipeline.EMPTY,
        )
    path = tmp / f"{name}.mlpackage"
    model.save(str(path))
    return path


# name -> (MIL builder on inputs x (1,8,10,12), y (1,8,10,12), v (1,5,12), w (1,12,7); PyTorch reference)
Case = tuple[Callable[..., object], Callable[..., torch.Tensor]]
CASES: dict[str, Case] = {
    "conv_custom_pad_stride2": (
        lambda x, y, v, w, n: mb.conv(x=x, weight=W_CONV, bias=B_CONV, strides=[2, 2], pad_type="custom", pad=[1, 0, 2, 1], name=n),
        lambda x, y, v, w: F.conv2d(F.pad(x, (2, 1, 1, 0)), torch.from_numpy(W_CONV), torch.from_numpy(B_CONV), stride=2),
    ),
    "conv_same_depthwise_dilated": (
        lambda x, y, v, w, n: mb.conv(x=x, weight=W_DW, pad_type="same", groups=8, dilations=[2, 2], name=n),
        lambda x, y, v, w: F.conv2d(x, torch.from_numpy(W_DW), padding=2, dilation=2, groups=8),
    ),
    "conv_valid_pointwise": (
        lambda x, y, v, w, n: mb.conv(x=x, weight=W_PW, pad_type="valid", name=n),
        lambda x, y, v, w: F.conv2d(x, torch.from_numpy(W_PW)),
    ),
    "linear": (
        lambda x, y, v, w, n: mb.linear(x=v, weight=W_LIN, bias=B_LIN, name=n),
        lambda x, y, v, w: F.linear(v, torch.from_numpy(W_LIN), torch.from_numpy(B_LIN)),
    ),
    "matmul": (lambda x, y, v, w, n: mb.matmul(x=v, y=w, name=n), lambda x, y, v, w: v @ w),
    "matmul_transpose_x": (
        lambda x, y, v, w, n: mb.matmul(x=v, y=v, transpose_x=True, name=n),
        lambda x, y, v, w: v.transpose(1, 2) @ v,
    ),
    "matmul_transpose_y": (
        lambda x, y, v, w, n: mb.matmul(x=v, y=v, transpose_y=True, name=n),
        lambda x, y, v, w: v @ v.transpose(1, 2),
    ),
    "softmax_last": (lambda x, y, v, w, n: mb.softmax(x=x, axis=-1, name=n), lambda x, y, v, w: x.softmax(-1)),
    "softmax_channels": (lambda x, y, v, w, n: mb.softmax(x=x, axis=1, name=n), lambda x, y, v, w: x.softmax(1)),
    "reduce_mean_spatial_keep": (
        lambda x, y, v, w, n: mb.reduce_mean(x=x, axes=[2, 3], keep_dims=True, name=n),
        lambda x, y, v, w: x.mean((2, 3), keepdim=True),
    ),
    "reduce_mean_channels": (
        lambda x, y, v, w, n: mb.reduce_mean(x=x, axes=[1], keep_dims=False, name=n),
        lambda x, y, v, w: x.mean(1),
    ),
    "reduce_sum": (lambda x, y, v, w, n: mb.reduce_sum(x=x, axes=[-1], name=n), lambda x, y, v, w: x.sum(-1)),
    "reduce_max": (lambda x, y, v, w, n: mb.reduce_max(x=x, axes=[2], name=n), lambda x, y, v, w: x.amax(2)),
    "layer_norm_chw": (
        lambda x, y, v, w, n: mb.layer_norm(x=x, axes=[1, 2, 3], epsilon=1e-5, name=n),
        lambda x, y, v, w: F.group_norm(x, 1, eps=1e-5),
    ),
    "layer_norm_last_affine": (
        lambda x, y, v, w, n: mb.layer_norm(x=x, axes=[-1], gamma=GAMMA12, beta=BETA12, epsilon=1e-3, name=n),
        lambda x, y, v, w: F.layer_norm(x, (12,), torch.from_numpy(GAMMA12), torch.from_numpy(BETA12), eps=1e-3),
    ),
    "instance_norm": (
        lambda x, y, v, w, n: mb.instance_norm(x=x, gamma=GAMMA8, beta=BETA8, epsilon=1e-3, name=n),
        lambda x, y, v, w: F.instance_norm(x, weight=torch.from_numpy(GAMMA8), bias=torch.from_numpy(BETA8), eps=1e-3),
    ),
    "batch_norm": (
        lambda x, y, v, w, n: mb.batch_norm(x=x, mean=MEAN8, variance=VAR8, gamma=GAMMA8, beta=BETA8, epsilon=1e-5, name=n),
        lambda x, y, v, w: F.batch_norm(
            x, torch.from_numpy(MEAN8), torch.from_numpy(VAR8), torch.from_numpy(GAMMA8), torch.from_numpy(BETA8), eps=1e-5
        ),
    ),
    "relu": (lambda x, y, v, w, n: mb.relu(x=x, name=n), lambda x, y, v, w: torch.relu(x)),
    "relu6": (lambda x, y, v, w, n: mb.relu6(x=mb.mul(x=x, y=5.0), name=n), lambda x, y, v, w: torch.clamp(x * 5, 0, 6)),
    "sigmoid": (lambda x, y, v, w, n: mb.sigmoid(x=x, name=n), lambda x, y, v, w: torch.sigmoid(x)),
    "tanh": (lambda x, y, v, w, n: mb.tanh(x=x, name=n), lambda x, y, v, w: torch.tanh(x)),
    "exp": (lambda x, y, v, w, n: mb.exp(x=x, name=n), lambda x, y, v, w: torch.exp(x)),
    "sqrt": (lambda x, y, v, w, n: mb.sqrt(x=mb.abs(x=x), name=n), lambda x, y, v, w: torch.sqrt(x.abs())),
    "rsqrt": (lambda x, y, v, w, n: mb.rsqrt(x=mb.square(x=x), epsilon=0.1, name=n), lambda x, y, v, w: torch.rsqrt(x * x + 0.1)),
    "clip": (lambda x, y, v, w, n: mb.clip(x=x, alpha=-0.5, beta=0.25, name=n), lambda x, y, v, w: torch.clamp(x, -0.5, 0.25)),
    "add": (lambda x, y, v, w, n: mb.add(x=x, y=y, name=n), lambda x, y, v, w: x + y),
    "add_broadcast": (lambda x, y, v, w, n: mb.add(x=x, y=CHAN, name=n), lambda x, y, v, w: x + torch.from_numpy(CHAN)),
    "sub": (lambda x, y, v, w, n: mb.sub(x=x, y=y, name=n), lambda x, y, v, w: x - y),
    "mul": (lambda x, y, v, w, n: mb.mul(x=x, y=y, name=n), lambda x, y, v, w: x * y),
    "real_div": (lambda x, y, v, w, n: mb.real_div(x=x, y=CHAN, name=n), lambda x, y, v, w: x / torch.from_numpy(CHAN)),
    "maximum": (lambda x, y, v, w, n: mb.maximum(x=x, y=y, name=n), lambda x, y, v, w: torch.maximum(x, y)),
    "minimum": (lambda x, y, v, w, n: mb.minimum(x=x, y=y, name=n), lambda x, y, v, w: torch.minimum(x, y)),
    "reshape": (lambda x, y, v, w, n: mb.reshape(x=x, shape=[1, 8, 120], name=n), lambda x, y, v, w: x.reshape(len(x), 8, 120)),
    "reshape_infer": (lambda x, y, v, w, n: mb.reshape(x=x, shape=[1, -1, 12], name=n), lambda x, y, v, w: x.reshape(len(x), -1, 12)),
    "transpose": (lambda x, y, v, w, n: mb.transpose(x=x, perm=[0, 2, 3, 1], name=n), lambda x, y, v, w: x.permute(0, 2, 3, 1)),
    "split_sizes_first": (
        lambda x, y, v, w, n: mb.split(x=x, split_sizes=[3, 5], axis=1, name=n)[0],
        lambda x, y, v, w: x[:, :3],
    ),
    "split_sizes_second": (
        lambda x, y, v, w, n: mb.split(x=x, split_sizes=[3, 5], axis=1, name=n)[1],
        lambda x, y, v, w: x[:, 3:],
    ),
    "split_even": (lambda x, y, v, w, n: mb.split(x=x, num_splits=2, axis=3, name=n)[1], lambda x, y, v, w: x[..., 6:]),
    "concat": (lambda x, y, v, w, n: mb.concat(values=[x, y], axis=1, name=n), lambda x, y, v, w: torch.cat([x, y], 1)),
    "squeeze": (
        lambda x, y, v, w, n: mb.squeeze(x=mb.reduce_mean(x=x, axes=[2, 3], keep_dims=True), axes=[2, 3], name=n),
        lambda x, y, v, w: x.mean((2, 3)),
    ),
    "expand_dims": (lambda x, y, v, w, n: mb.expand_dims(x=v, axes=[1], name=n), lambda x, y, v, w: v[:, None]),
    "slice_by_index": (
        lambda x, y, v, w, n: mb.slice_by_index(
            x=x,
            begin=[0, 2, 0, 1],
            end=[1, 7, 10, 12],
            stride=[1, 2, 1, 3],
            begin_mask=[True, False, True, False],
            end_mask=[True, False, True, True],
            name=n,
        ),
        lambda x, y, v, w: x[:, 2:7:2, :, 1::3],
    ),
    "cast_fp16_round_trip": (
        lambda x, y, v, w, n: mb.cast(x=mb.cast(x=mb.mul(x=x, y=1000.0), dtype="fp16"), dtype="fp32", name=n),
        lambda x, y, v, w: (x * 1000).half().float(),
    ),
}


@pytest.fixture(scope="module")
def op_program(tmp_path_factory: pytest.TempPathFactory) -> tuple[MILExecutor, dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """One fp32 program with every case as an output, run once on a batch of random inputs."""
    specs = [mb.TensorSpec(shape=s) for s in ((1, 8, 10, 12), (1, 8, 10, 12), (1, 5, 12), (1, 12, 7))]

    @mb.program(input_specs=specs, opset_version=ct.target.iOS16)
    def program(x, y, v, w):
        return tuple(build(x, y, v, w, name) for name, (build, _) in CASES.items())

    path = _save(tmp_path_factory.mktemp("mil-ops"), program, ct.target.iOS16, "ops")
    executor = MILExecutor(path)
    names = [i.name for i in executor.inputs]
    rng = np.random.default_rng(1)
    feeds = {n: rng.standard_normal((BATCH, *i.shape[1:])).astype(np.float32) for n, i in zip(names, executor.inputs)}
    outputs = executor.run(feeds)
    by_case = dict(zip(CASES, executor.output_names))
    tensors = {n: torch.from_numpy(feeds[n]) for n in names}
    return executor, {case: outputs[out] for case, out in by_case.items()}, tensors


@pytest.mark.parametrize("case", list(CASES))
def test_op_matches_pytorch_on_random_inputs(op_program, case: str) -> None:
    _, outputs, inputs = op_program
    expected = CASES[case][1](*inputs.values()).numpy()
    assert_close(outputs[case], expected, rel=1e-5, what=case)


def test_every_case_ran_as_the_op_it_names(op_program) -> None:
    executor, _, _ = op_program
    ran = set(executor.op_types())
    for op in (
        "conv",
        "linear",
        "matmul",
        "softmax",
        "reduce_mean",
        "layer_norm",
        "instance_norm",
        "batch_norm",
        "relu",
        "sigmoid",
        "add",
        "sub",
        "mul",
        "real_div",
        "reshape",
        "transpose",
        "split",
        "concat",
        "cast",
        "slice_by_index",
        "squeeze",
        "expand_dims",
    ):
        assert op in ran, f"no {op} op in the test program: the case was folded away"


def test_quantize_dequantize_match_the_ios17_formulas(tmp_path: Path) -> None:
    scale8 = (np.abs(_w(8)) * 0.02 + 0.005).astype(np.float32)
    zero8 = RNG.integers(100, 150, 8).astype(np.uint8)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 10, 12))], opset_version=ct.target.iOS17)
    def program(x):
        q = mb.quantize(input=x, scale=np.float32(0.02), zero_point=np.int8(3), output_dtype="int8")
        per_tensor = mb.dequantize(input=q, scale=np.float32(0.02), zero_point=np.int8(3), name="per_tensor")
        qc = mb.quantize(input=x, scale=scale8, zero_point=zero8, axis=1, output_dtype="uint8")
        per_channel = mb.dequantize(input=qc, scale=scale8, zero_point=zero8, axis=1, name="per_channel")
        return per_tensor, per_channel

    executor = MILExecutor(_save(tmp_path, program, ct.target.iOS17, "quant"))
    x = np.random.default_rng(2).standard_normal((BATCH, 8, 10, 12)).astype(np.float32) * 2
    out = executor.run({executor.inputs[0].name: x})
    t = torch.from_numpy(x)
    expected = (torch.clamp(torch.round(t / 0.02) + 3, -128, 127) - 3) * 0.02
    assert_close(out["per_tensor"], expected.numpy(), rel=1e-6, what="int8 per-tensor")
    s, z = torch.from_numpy(scale8)[None, :, None, None], torch.from_numpy(zero8.astype(np.float32))[None, :, None, None]
    expected_c = (torch.clamp(torch.round(t / s) + z, 0, 255) - z) * s
    assert_close(out["per_channel"], expected_c.numpy(), rel=1e-6, what="uint8 per-channel")
    assert np.unique(out["per_tensor"]).size <= 256, "values must lie on the int8 grid"


def test_constexpr_weight_decompression_ops(tmp_path: Path) -> None:
    """iOS 16 affine (operands stored as attributes) and iOS 18 blockwise shift-scale weights."""
    data = RNG.integers(-128, 128, (6, 12)).astype(np.int8)
    zero = RNG.integers(-5, 5, 6).astype(np.int8)
    scale = (np.abs(_w(6)) * 0.01 + 0.001).astype(np.float32)
    block_scale = (np.abs(_w(6, 3)) * 0.01 + 0.001).astype(np.float32)
    block_offset = RNG.integers(-5, 5, (6, 3)).astype(np.int8)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 5, 12))], opset_version=ct.target.iOS16)
    def affine(v):
        w = mb.constexpr_affine_dequantize(quantized_data=data, zero_point=zero, scale=scale, axis=0)
        return mb.linear(x=v, weight=w, name="out")

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 5, 12))], opset_version=ct.target.iOS18)
    def blockwise(v):
        w = mb.constexpr_blockwise_shift_scale(data=data, scale=block_scale, offset=block_offset)
        return mb.linear(x=v, weight=w, name="out")

    v = np.random.default_rng(3).standard_normal((BATCH, 5, 12)).astype(np.float32)
    weight_affine = (data.astype(np.float32) - zero[:, None]) * scale[:, None]
    weight_block = (data.astype(np.float32) - np.repeat(block_offset, 4, axis=1)) * np.repeat(block_scale, 4, axis=1)
    for program, target, weight in ((affine, ct.target.iOS16, weight_affine), (blockwise, ct.target.iOS18, weight_block)):
        executor = MILExecutor(_save(tmp_path, program, target, f"constexpr{target.value}"))
        out = executor.run({executor.inputs[0].name: v})["out"]
        assert_close(out, v @ weight.T, rel=1e-5, what=f"constexpr weights, spec {target.value}")


@pytest.fixture(scope="module")
def fp16_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 10, 12))], opset_version=ct.target.iOS16)
    def program(x):
        h = mb.cast(x=x, dtype="fp16")
        h = mb.conv(x=h, weight=W_PW.astype(np.float16), pad_type="valid")
        h = mb.layer_norm(x=h, axes=[1, 2, 3], epsilon=np.float16(1e-5))
        h = mb.softmax(x=mb.mul(x=h, y=np.float16(3.0)), axis=-1)
        return mb.cast(x=h, dtype="fp32", name="out")

    return _save(tmp_path_factory.mktemp("fp16"), program, ct.target.iOS16, "fp16")


def test_fp16_program_is_emulated_by_rounding_every_op_output(fp16_program: Path) -> None:
    x = np.random.default_rng(4).standard_normal((BATCH, 8, 10, 12)).astype(np.float32)
    emulated = MILExecutor(fp16_program)
    assert emulated.is_fp16
    out = emulated.run({emulated.inputs[0].name: x})["out"]

    def r(t: torch.Tensor) -> torch.Tensor:
        return t.half().float()

    t = r(torch.from_numpy(x))
    t = r(F.conv2d(t, torch.from_numpy(W_PW.astype(np.float16).astype(np.float32))))
    t = r(F.group_norm(t, 1, eps=float(np.float16(1e-5))))
    t = r(r(t * 3).softmax(-1))
    assert np.array_equal(out, out.astype(np.float16).astype(np.float32)), "fp16 outputs must be fp16 values"
    assert_close(out, t.numpy(), rel=2e-3, what="fp16 emulation vs rounded PyTorch")
    unrounded = MILExecutor(fp16_program, emulate_fp16=False).run({emulated.inputs[0].name: x})["out"]
    assert not np.array_equal(out, unrounded), "turning emulation off must change the result"


def test_unknown_op_is_refused_by_name(tmp_path: Path) -> None:
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS16)
    def program(x):
        return mb.erf(x=mb.relu(x=x), name="out")

    path = _save(tmp_path, program, ct.target.iOS16, "erf")
    with pytest.raises(UnsupportedProgram, match=r"'erf'") as info:
        MILExecutor(path)
    assert "does not implement" in str(info.value)


def test_wrong_input_shape_and_non_package_are_one_line_errors(fp16_program: Path, tmp_path: Path) -> None:
    executor = MILExecutor(fp16_program)
    with pytest.raises(ConvertError, match="wrong variant or input size"):
        executor.run({executor.inputs[0].name: np.zeros((1, 8, 9, 12), np.float32)})
    with pytest.raises(ConvertError, match=r"not an \.mlpackage"):
        MILExecutor(tmp_path)


def test_runs_a_plain_coremltools_conversion_of_shvit_like_pytorch(tmp_path: Path) -> None:
    """A program coremltools wrote on its own (GroupNorm decomposed, slices): not only our graph."""
    config = SHViTConfig(embed_dim=(32, 48, 64), depth=(1, 1, 1), partial_dim=(8, 12, 16), num_classes=10, img_size=64)
    deploy = shvit.reparameterize(recompute_bn_stats(shvit.SHViT(config), size=64, images=8))
    with quiet():
        traced = torch.jit.trace(deploy, torch.zeros(1, 3, 64, 64))
        model = ct.convert(
            traced,
            inputs=[ct.TensorType(name="x", shape=(1, 3, 64, 64))],
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS16,
            compute_precision=ct.precision.FLOAT32,
        )
    path = tmp_path / "plain.mlpackage"
    model.save(str(path))
    executor = MILExecutor(path)
    assert {"reduce_mean", "sqrt", "real_div", "slice_by_index"} <= set(executor.op_types())
    x = np.random.default_rng(5).standard_normal((3, 3, 64, 64)).astype(np.float32)
    out = executor.run({"x": x})[executor.output_names[0]]
    with torch.no_grad():
        expected = deploy(torch.from_numpy(x)).numpy()
    assert_close(out, expected, rel=1e-5, what="plain conversion")
