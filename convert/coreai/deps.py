"""Import coreai-torch / coreai-core once, quietly, or fail with one line saying how to install them."""
from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType

from convert.errors import ConvertError

COREAI_TORCH_VERSION = "0.4.2"
COREAI_CORE_VERSION = "1.0.0b2"
INSTALL_HINT = (
    f"pip install 'coreai-torch=={COREAI_TORCH_VERSION}' 'coreai-core=={COREAI_CORE_VERSION}' "
    "(not coreai-torch 0.4.3: its coreai-core 1.0.0b3 needs numpy>=2.3, which conflicts with onnx2tf's numpy 1.26.4 pin)"
)


class CoreAIUnavailable(ConvertError):
    """coreai-torch or coreai-core is not installed (or does not import) in this environment."""


def require(name: str) -> ModuleType:
    """``name`` (``coreai_torch``, ``coreai.runtime`` ...), with coreai-torch's torch-version warning silenced.

    coreai-torch warns on every import that torch ``2.13.0+cpu`` is newer than its validated
    ``2.13.0`` (the local build tag compares greater); it is the same release, so the warning is noise.
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except ImportError as exc:
        raise CoreAIUnavailable(f"Core AI export needs {exc.name or name}, which is not installed: {INSTALL_HINT}") from None
