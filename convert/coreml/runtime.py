"""How the parity run, the timer and the checker open an ``.mlpackage``: Core ML itself on macOS; elsewhere the
reference MIL executor (:mod:`convert.coreml.mil_executor`), which runs the program's ops in PyTorch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from convert.errors import ConvertError
from convert.targets import ArtifactFacts, Loaded, RuntimeBase, Step

OFF_MACOS = "unavailable off macOS (Core ML runs only on Apple platforms)"


class CoreMLRuntime(RuntimeBase):
    def open(self, path: Path, *, threads: int | None) -> Loaded:
        if sys.platform == "darwin":
            return _core_ml(path)
        import torch

        from convert.coreml.mil_executor import MILExecutor

        if threads:
            torch.set_num_threads(threads)
        executor = MILExecutor(path)
        mode = "fp16 emulated" if executor.is_fp16 else "fp32"
        return Loaded(executor.logits, f"reference MIL executor, {mode} (Core ML cannot run on Linux)")

    def inspect(self, path: Path) -> ArtifactFacts:
        from convert.coreml.ctimport import import_coremltools
        from convert.onnx.runtime import spatial_size

        spec = import_coremltools().utils.load_spec(str(path))
        from coremltools.proto import MIL_pb2

        first = spec.description.input[0].type
        if first.WhichOneof("Type") == "imageType":
            size = int(first.imageType.height) or None
        else:
            size = spatial_size([int(d) for d in first.multiArrayType.shape])
        classes = None
        for output in spec.description.output:
            if output.type.WhichOneof("Type") == "multiArrayType" and output.type.multiArrayType.shape:
                classes = int(output.type.multiArrayType.shape[-1])
        precision, runs = None, None
        if spec.WhichOneof("Type") == "mlProgram":
            main = spec.mlProgram.functions["main"]
            operations = list(main.block_specializations[main.opset].operations)
            types = {op.type for op in operations}
            runs = sum(1 for op in operations if op.type != "const" and not op.type.startswith("constexpr_"))
            const_types = {MIL_pb2.DataType.Name(op.attributes["val"].type.tensorType.dataType) for op in operations if op.type == "const"}
            if types & {"quantize", "dequantize"}:
                precision = "int8"
            elif any(name.startswith("constexpr_") for name in types):
                precision = "int8-weights"
            else:
                precision = "fp16" if "FLOAT16" in const_types else "fp32"
        return ArtifactFacts(input_size=size, num_classes=classes, precision=precision, ops=runs)

    def latency_unavailable(self) -> str | None:
        return None if sys.platform == "darwin" else OFF_MACOS


def _core_ml(path: Path) -> Loaded:
    from PIL import Image

    from convert.coreml.ctimport import import_coremltools
    from convert.coreml.export import LOGITS_NAME

    ct = import_coremltools()
    model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
    description = model.get_spec().description
    image = description.input[0]

    def predict(pixels: np.ndarray) -> np.ndarray:
        if LOGITS_NAME not in {o.name for o in description.output}:
            raise ConvertError(f"{path.name} has no '{LOGITS_NAME}' output to compare: export it with shvit-convert")
        height, width = image.type.imageType.height, image.type.imageType.width
        if pixels.shape[1:3] != (height, width):
            raise ConvertError(
                f"{path.name} takes {width}x{height} images, got {pixels.shape[2]}x{pixels.shape[1]}: wrong variant or input size?"
            )
        outputs = model.predict([{image.name: Image.fromarray(np.ascontiguousarray(p))} for p in pixels])
        return np.stack([np.asarray(o[LOGITS_NAME], dtype=np.float32).reshape(-1) for o in outputs])

    def prepare(pixels: np.ndarray) -> Step:
        if image.type.WhichOneof("Type") == "imageType":
            feed: dict[str, Any] = {image.name: Image.fromarray(pixels[0])}
        else:
            feed = {image.name: pixels.astype(np.float32).transpose(0, 3, 1, 2)}
        return lambda: model.predict(feed)

    return Loaded(predict, f"Core ML {ct.__version__} runtime on macOS (compute units: all)", prepare)


RUNTIME = CoreMLRuntime()
