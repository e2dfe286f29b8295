"""TFLite target: SHViT → ONNX → onnx2tf → LiteRT-ready ``.tflite`` (fp32, fp16, int8-weights, int8)."""
