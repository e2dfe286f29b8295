"""Shared CLI plumbing: one clear line per error, exit codes, ``--debug`` for the traceback, Ctrl-C → 130,
and the library's log records shown as the command's progress lines."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import re
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import click
from click.decorators import FC

from convert.errors import UsageError
from convert.io.staging import DISK_FULL, visible_folder
from shvit.errors import SHViTError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
INTERRUPTED = "interrupted; no partial output was left behind"
FLAGS: dict[str, str | None] = {"out_dir": "--out", "model_path": "--model", "artifacts": None}
"""Python argument → command-line flag, where the flag is not simply ``--argument-name`` (None: a positional argument)."""
LOGGERS: tuple[str, ...] = ("convert", "mobile_demo", "shvit")


def flag(argument: str) -> str | None:
    """The command-line spelling of a Python argument's name."""
    return FLAGS.get(argument, "--" + argument.replace("_", "-"))


def for_cli(exc: SHViTError) -> str:
    """An error's message led by the flag of the argument at fault, as click and argparse report a bad option."""
    return exc.led_by(flag(exc.argument) if exc.argument else None)


def version_option() -> Callable[[FC], FC]:
    """``--version`` for every command: the toolkit's installed version."""
    return click.version_option(package_name="shvit-mobile", message="%(prog)s %(version)s")


_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")


def _os_failure(exc: BaseException) -> tuple[int, str | None] | None:
    """(errno, path) of a disk-full or permission failure anywhere in the exception chain.

    ``shutil.copytree`` collects its per-file failures as ``(src, dst, text)`` inside one
    ``shutil.Error``, so the errno is read back from the text and the path is the destination.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, shutil.Error) and current.args and isinstance(current.args[0], list):
            for item in current.args[0]:
                found = _ERRNO_IN_TEXT.search(str(item[-1])) if isinstance(item, tuple) and len(item) == 3 else None
                if found and int(found.group(1)) in DISK_FULL + _NOT_ALLOWED:
                    return int(found.group(1)), str(item[1])
        elif isinstance(current, OSError) and current.errno in DISK_FULL + _NOT_ALLOWED:
            return current.errno, current.filename if isinstance(current.filename, str) else None
        current = current.__cause__ or current.__context__
    return None


def _environment_message(code: int, path: str | None) -> str:
    """The machine, not the input, stopped the command: say where and what to do."""
    folder = visible_folder(path)
    if code in DISK_FULL:
        where = f" writing to {folder}" if folder else ""
        return f"no space left on the device{where} (no partial files left): free some space or write to another disk"
    if code == errno.EROFS:
        return f"{folder or 'the output folder'} is on a read-only file system (no partial files left): write to another folder"
    shown = path if path and folder == str(Path(path).parent) else folder
    return f"permission denied on {shown or 'a file it needs'}: fix its permissions or use another path"


class _ProgressLines(logging.Handler):
    """Log records as plain lines on stderr, written around any progress bar that is being drawn."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        message = record.getMessage()
        tqdm.write(f"warning: {message}" if record.levelno >= logging.WARNING else message, file=sys.stderr)


@contextlib.contextmanager
def _showing_logs() -> Iterator[None]:
    handler = _ProgressLines()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


class _Interrupts:
    """Whether Ctrl-C or SIGTERM arrived during the command: a library that swallows the
    KeyboardInterrupt (an import cut half-way, say) then fails with some other error, which is
    still the interruption as far as the user is concerned."""

    received = False

    @classmethod
    def raise_interrupt(cls, signum: int, _frame: object) -> None:
        cls.received = True
        raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _terminate_like_interrupt() -> Iterator[None]:
    """SIGTERM (a killed job, a closed IDE) cleans up exactly like Ctrl-C: staging removed, exit 130.

    The previous handlers come back afterwards, so calling a command in-process changes nothing.
    """
    _Interrupts.received = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _Interrupts.raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_PY_EVAL_INPUT = 258
"""``Py_eval_input`` of CPython's ``compile.h``: PyRun_String evaluates one expression."""


def _forget_caught_interrupt() -> None:
    """Tell CPython the Ctrl-C was handled, so ``python -m`` exits 130 rather than dying of SIGINT.

    CPython (3.11 to 3.13) marks a KeyboardInterrupt as unhandled whenever one leaves a nested
    ``PyRun_String`` (optree, numpy and TensorFlow call it), even if the caller catches it; ``python -m``
    then ends by re-raising SIGINT at itself after our cleanup. Whether Ctrl-C lands in such a call is
    chance, so the exit status would be too. Each ``PyRun_String`` clears the mark before it runs, and
    the flag's home differs between versions, so one trivial, successful call is the portable reset.
    """
    prototype = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object)
    try:
        run_string = prototype(("PyRun_String", ctypes.pythonapi))
    except (AttributeError, OSError):  # not CPython: nothing to clear
        return
    namespace: dict[str, object] = {}
    run_string(b"None", _PY_EVAL_INPUT, namespace, namespace)


def run_command(command: click.Command, argv: Sequence[str] | None = None) -> int:
    """Run a click command the way users need it: no traceback unless ``--debug``, one line per error."""
    args = list(sys.argv[1:] if argv is None else argv)
    prog = command.name or "shvit"
    debug = "--debug" in args
    try:
        with _terminate_like_interrupt(), _showing_logs():
            result = command.main(args=args, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        click.echo(f"{prog}: error: {exc.format_message()} (see {prog} --help)", err=True)
        return EXIT_USAGE
    except UsageError as exc:
        if debug:
            raise
        click.echo(f"{prog}: error: {for_cli(exc)} (see {prog} --help)", err=True)
        return EXIT_USAGE
    except (click.Abort, KeyboardInterrupt):
        _forget_caught_interrupt()
        click.echo(f"{prog}: {INTERRUPTED}", err=True)
        return EXIT_INTERRUPTED
    except SHViTError as exc:
        if debug:
            raise
        click.echo(f"{prog}: error: {for_cli(exc)}", err=True)
        return EXIT_ERROR
    except Exception as exc:  # a bug, not bad input: still one line, traceback on request
        if _Interrupts.received and not debug:
            _forget_caught_interrupt()
            click.echo(f"{prog}: {INTERRUPTED}", err=True)
            return EXIT_INTERRUPTED
        if debug:
            raise
        failure = _os_failure(exc)
        if failure is not None:
            click.echo(f"{prog}: error: {_environment_message(*failure)}", err=True)
            return EXIT_ERROR
        click.echo(f"{prog}: internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)", err=True)
        return EXIT_ERROR
    return result if isinstance(result, int) else 0
