"""Mobile demo apps for exported SHViT models: a SwiftUI app for Core ML, a Compose app for LiteRT.

Each generated project is specialised to the model it was generated from (input size, feature
names, label source, quantisation), read from the artifact itself, never guessed.
"""

from __future__ import annotations

from mobile_demo.errors import DemoError, NotAnImageClassifier
from mobile_demo.generate import generate_demo

__all__ = ["DemoError", "NotAnImageClassifier", "generate_demo"]
