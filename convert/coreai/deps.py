"""Import coreai-torch / coreai-core / coreai-opt once, quietly, or fail with one line saying how to install them."""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType

from convert.errors import ConvertError

INSTALL_HINT = "pip install 'shvit-mobile[coreai]'"
IMPORT_LOGGERS: tuple[str, ...] = ("torch", "torchao")
"""Loggers whose warnings a first import of coreai-opt (torchao) sets off: torch's pytree and
cpp_extension notes, written to stderr by torch's own handler."""


class CoreAIUnavailable(ConvertError):
    """coreai-torch, coreai-core or coreai-opt is not installed (or does not import) in this environment."""


def require(name: str) -> ModuleType:
    """``name`` (``coreai_torch``, ``coreai.runtime``, ``coreai_opt.coreai_utils`` ...), imported quietly.

    coreai-torch warns on every import that torch ``2.13.0+cpu`` is newer than its validated
    ``2.13.0`` (the local build tag compares greater); it is the same release, so the warning is noise.
    coreai-opt warns on import (``UntestedTorchVersionWarning``, ``TorchaoTorchIncompatibilityWarning``)
    and its torchao import makes torch log two notes: both silenced for the import only.
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    try:
        with warnings.catch_warnings(), _import_logs_dropped():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except ImportError as exc:
        raise CoreAIUnavailable(f"Core AI export needs {exc.name or name}, which is not installed: {INSTALL_HINT}") from None


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def _import_logs_dropped() -> Iterator[None]:
    """Warnings logged during an import to the handlers of :data:`IMPORT_LOGGERS` are dropped
    (a handler filter, removed afterwards: records from child loggers reach those handlers too)."""
    dropped = _BelowError()
    handlers = [h for name in IMPORT_LOGGERS for h in logging.getLogger(name).handlers]
    for handler in handlers:
        handler.addFilter(dropped)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(dropped)
