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


def test_the_python_api_imports_coremltools_in_a_fresh_process() -> None:
    """No entry point ran: coremltools brings TensorFlow and then triton (torchao), which must not crash the process."""
    script = "from convert.coreml.ctimport import import_coremltools\nimport_coremltools()\nprint('imported')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip() == "imported"
