"""Import coremltools quietly; its conversions without their progress bars."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType


def import_coremltools() -> ModuleType:
    """``coremltools``, with its version and missing-runtime warnings silenced.

    A command line imports it earlier, without TensorFlow (:func:`convert.process.preload_coremltools`);
    a Python caller gets coremltools as it comes.
    """
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    if "tensorflow" not in sys.modules and importlib.util.find_spec("triton") is not None:
        # coremltools imports TensorFlow (where installed), then torchao, which imports triton; with
        # PyTorch's CUDA build, triton imported after TensorFlow segfaults: triton goes first.
        import triton  # noqa: F401
    # coremltools imports torchao where installed (coreai-opt brings it), which registers an Enum
    # that torch's pytree logs a deprecation warning about: noise for a user.
    loggers = [logging.getLogger(name) for name in ("coremltools", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import coremltools
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    return coremltools


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Hide coremltools' per-pass progress bars and info warnings during a conversion; errors still propagate."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
