"""Exporters for SHViT: one sub-package per target, staged config → export → optimise/quantise → validate.

- :mod:`convert.config`    what an export is (a dataclass) and which targets/precisions exist
- :mod:`convert.onnx`      ONNX export (also the front half of the TFLite path)
- :mod:`convert.coreml`    Core ML ``.mlpackage`` export, quantisation and the reference MIL executor
- :mod:`convert.tflite`    TFLite export through onnx2tf, LiteRT quantisation and metadata
- :mod:`convert.validate`  parity against PyTorch: runtimes in subprocesses, metrics, tolerances
- :mod:`convert.artifacts` atomic output and the JSON sidecar that traces every artifact
"""
