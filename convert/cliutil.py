"""Shared CLI plumbing: one clear line per error, exit codes, ``--debug`` for the traceback, Ctrl-C → 130."""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

import click

from shvit.errors import SHViTError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _user_errors() -> tuple[type[BaseException], ...]:
    from convert.errors import ToleranceError

    errors: list[type[BaseException]] = [SHViTError, ToleranceError]
    try:
        from calib import CalibError

        errors.append(CalibError)
    except ImportError:
        pass
    return tuple(errors)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _terminate_like_interrupt() -> Iterator[None]:
    """SIGTERM (a killed job, a closed IDE) cleans up exactly like Ctrl-C: staging removed, exit 130.

    The previous handler comes back afterwards, so calling a command in-process changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(command: click.Command, argv: Sequence[str] | None = None) -> int:
    """Run a click command the way users need it: no traceback unless ``--debug``, one line per error."""
    args = list(sys.argv[1:] if argv is None else argv)
    prog = command.name or "shvit"
    debug = "--debug" in args
    try:
        with _terminate_like_interrupt():
            result = command.main(args=args, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        click.echo(f"{prog}: error: {exc.format_message()} (see {prog} --help)", err=True)
        return EXIT_USAGE
    except (click.Abort, KeyboardInterrupt):
        click.echo(f"{prog}: interrupted; nothing was written", err=True)
        return EXIT_INTERRUPTED
    except _user_errors() as exc:
        if debug:
            raise
        click.echo(f"{prog}: error: {exc}", err=True)
        return EXIT_ERROR
    except Exception as exc:  # a bug, not bad input: still one line, traceback on request
        if debug:
            raise
        click.echo(f"{prog}: internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)", err=True)
        return EXIT_ERROR
    return result if isinstance(result, int) else 0
