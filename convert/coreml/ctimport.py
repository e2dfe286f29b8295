"""Import coremltools quietly and without TensorFlow.

``import coremltools`` also imports TensorFlow (for its TF converter, which this toolkit never
uses): that costs 3-8 s in every export and every parity subprocess and prints a screen of
warnings. Blocking the import while coremltools loads makes it skip that converter; the block is
lifted right after, so TensorFlow stays importable for everything else in the process.
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from types import ModuleType


def import_coremltools() -> ModuleType:
    """``coremltools``, imported once, with its version and missing-runtime warnings silenced."""
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    block_tf = "tensorflow" not in sys.modules
    if block_tf:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]  # makes `import tensorflow` fail fast
    # coremltools imports torchao where installed (coreai-opt brings it), which registers an Enum
    # that torch's pytree logs a deprecation warning about: noise for a user.
    loggers = [logging.getLogger(name) for name in ("coremltools", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _interrupts_held():
            warnings.simplefilter("ignore")
            import coremltools
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if block_tf and sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
    return coremltools


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C or SIGTERM during the import is delivered once the import is done.

    coremltools imports its optional dependencies (torchao: several seconds) under bare ``except:``,
    which swallows a KeyboardInterrupt: the export would carry on as if nothing happened. While the
    import runs, a signal is only recorded; the handlers in place before are restored afterwards and
    the signal is raised again for them (a command's handler then interrupts right here).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def record(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if received:
            signal.raise_signal(received[0])


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
