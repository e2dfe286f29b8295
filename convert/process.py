"""What a process entry point (a command, a child process) sets up for itself.

Each of these changes the whole process, so library code never calls them: the CLI commands and the
child processes' ``__main__`` blocks do, before the work starts.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

_SKIPPED_BY_COREMLTOOLS = ("tensorflow", "torchao")
"""Optional dependencies of coremltools for converters this toolkit never calls."""


def preload_coremltools() -> None:
    """Import coremltools now, for a command (or a child process) that will use it.

    ``import coremltools`` also imports TensorFlow for its TF converter and torchao (which coreai-opt
    installs) for torchao-quantised PyTorch models, neither of which this toolkit uses: TensorFlow costs
    3-8 s and a screen of warnings, torchao 6-7 s (it imports torch._dynamo and sympy), in every export
    and parity child. Blocking those imports while coremltools loads makes it skip both; the block is
    lifted right after, so both stay importable. coremltools imports its optional dependencies under bare
    ``except:``, which would swallow a Ctrl-C: the signal is recorded meanwhile and raised again after.
    """
    from convert.targets import missing_toolchain

    if "coremltools" in sys.modules or missing_toolchain("coreml"):
        return  # without it, the target says what to install when it is used
    from convert.coreml.ctimport import import_coremltools

    blocked = [name for name in _SKIPPED_BY_COREMLTOOLS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # `import tensorflow` fails fast
    try:
        with _signals_held():
            import_coremltools()
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the block is delivered once it is done, to the handlers in place before."""
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
