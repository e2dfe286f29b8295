"""ONNX export: the deploy model with pixel input, traced at opset 17 and simplified."""
from convert.onnx.export import export_onnx

__all__ = ["export_onnx"]
