"""What entry points set up for their process (``convert.process``): coremltools without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib.util, sys
from convert.process import preload_coremltools
preload_coremltools()
print("coremltools" in sys.modules, "tensorflow" in sys.modules, importlib.util.find_spec("tensorflow") is not None)
"""


def test_a_command_imports_coremltools_without_tensorflow_and_leaves_it_importable() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "False", "True"]
