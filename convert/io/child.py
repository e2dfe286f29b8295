"""Work isolated in a child process: the one way this package runs anything out of process.

Conversions, parity runs, graph reads and timing run in children because native runtimes abort on
malformed graphs, toolchains print on file descriptors 1 and 2, and some libraries cannot share a
process (TensorFlow and triton, for one). A native abort, a hang or an exit in the child becomes a
:class:`ChildFailure` with one line, never a dead caller.

One protocol for every child (``python -m convert.io.child``): the parent writes a job as one JSON line
on the child's stdin, naming a function ``"module:name"`` and its keyword arguments; the child answers on
its own channel (a duplicate of its stdout: fd 1 itself joins stderr in the log) with JSON lines, zero or
more ``{"event": …}`` then ``{"result": …}`` or ``{"error": …}``. A *served* child keeps the object the
function returned and answers ``{"method": …, "kwargs": …}`` lines until ``{"quit": true}``. Arrays
travel as base64 ``.npy`` inside the JSON, so results are exact. Every child refuses the network unless
asked not to, exits when its parent dies, and is killed when the parent is interrupted.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

DEFAULT_TIMEOUT_S = 900.0
"""Longest wait for one answer of a child (loading a model, a parity run, one round of timed runs)."""
_QUIT_TIMEOUT_S = 10.0

Event = Callable[[dict[str, Any]], None]


class ChildFailure(Exception):
    """A child that timed out, died of a signal, or answered with an error (its type, message and argument)."""

    def __init__(
        self,
        *,
        timeout_s: float | None = None,
        signal_name: str | None = None,
        error: str = "",
        kind: str = "",
        argument: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        self.timeout_s, self.signal_name, self.kind, self.argument, self.exit_code = timeout_s, signal_name, kind, argument, exit_code
        self.message = error
        super().__init__(self.error or signal_name or f"timeout after {timeout_s} s")

    @property
    def error(self) -> str:
        """The child's error as one line, ``"Type: message"``."""
        return f"{self.kind}: {self.message}" if self.kind and self.message else self.message

    def describe(self, subject: str, during: str) -> str:
        """One line: ``"<subject> crashed with SIGABRT <during>"`` and the like."""
        if self.timeout_s is not None:
            return f"{subject} did not finish within {self.timeout_s:.0f} s"
        if self.signal_name is not None:
            return f"{subject} crashed with {self.signal_name} {during}"
        return self.error or f"{subject} exited with code {self.exit_code} {during}"


# ---- the wire format ------------------------------------------------------------------------


def encode(value: Any) -> str:
    """One JSON line; arrays as base64 ``.npy``, anything else JSON lacks (paths) as its text."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            buffer = io.BytesIO()
            np.save(buffer, obj, allow_pickle=False)
            return {"__ndarray__": base64.b64encode(buffer.getvalue()).decode("ascii")}
        if isinstance(obj, np.generic):
            return obj.item()
        return str(obj)  # paths, and what a record names by its text

    return json.dumps(value, default=default) + "\n"


def decode(line: str) -> Any:
    def hook(obj: dict[str, Any]) -> Any:
        if len(obj) == 1 and "__ndarray__" in obj:
            return np.load(io.BytesIO(base64.b64decode(obj["__ndarray__"])), allow_pickle=False)
        return obj

    return json.loads(line, object_hook=hook)


# ---- the parent's side ----------------------------------------------------------------------


def child_env(extra: Mapping[str, str] | None = None, *, threads: int | None = None) -> dict[str, str]:
    """This environment, with everything this process imports importable (plugin targets too) and quiet TensorFlow."""
    search_path = os.pathsep.join(p for p in sys.path if p)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": search_path, "PYTHONUNBUFFERED": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return {**env, **(extra or {})}


class Child:
    """A child process running ``entry(**args)``; with ``serve``, then answering :meth:`call` on what it returned.

    ``timeout_s`` bounds each answer (None: no bound); ``on_event`` receives the function's progress
    events (it is then called with ``emit=``); the child's stderr and stray stdout go to ``log_path``
    (a private temporary file if None). Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        entry: str,
        *,
        args: Mapping[str, Any] | None = None,
        serve: bool = False,
        threads: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        on_event: Event | None = None,
        offline: bool = True,
        preload_coremltools: bool = False,
    ) -> None:
        self.timeout_s, self.on_event = timeout_s, on_event
        self._log: IO[bytes] = open(log_path, "w+b") if log_path is not None else tempfile.TemporaryFile()
        job = {
            "entry": entry,
            "args": dict(args or {}),
            "serve": serve,
            "events": on_event is not None,
            "offline": offline,
            "preload_coremltools": preload_coremltools,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "convert.io.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=child_env(env, threads=threads),
            cwd=cwd,
            text=True,
            bufsize=1,
        )
        self._replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"child-{entry}", daemon=True).start()
        self._send(job)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None and not issubclass(kind, Exception):
            self.kill()  # Ctrl-C or SIGTERM: no child may outlive the command, none gets time to linger
        self.close()

    def result(self) -> Any:
        """What ``entry`` returned (None for a served child, once its object is ready)."""
        return self._answer()

    def call(self, method: str, **kwargs: Any) -> Any:
        """``method(**kwargs)`` on the served object, in the child."""
        self._send({"method": method, "kwargs": kwargs})
        return self._answer()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        """Ask the child to quit; kill it if it does not."""
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(encode({"quit": True}))
                self.proc.stdin.close()
                self.proc.wait(timeout=_QUIT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        finally:
            self.kill()
            self._log.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(encode(message))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._death() from None

    def _answer(self) -> Any:
        while True:
            try:
                line = self._replies.get(timeout=self.timeout_s)
            except queue.Empty:
                self.kill()
                raise ChildFailure(timeout_s=self.timeout_s) from None
            if line is None:
                raise self._death()
            reply = decode(line)
            if "event" in reply:
                if self.on_event is not None:
                    self.on_event(reply)
                continue
            if "error" in reply:
                error = reply["error"]
                raise ChildFailure(error=error["message"], kind=error["type"], argument=error.get("argument"))
            return reply["result"]

    def _death(self) -> ChildFailure:
        code = self.proc.wait()
        if code < 0:
            return ChildFailure(signal_name=signal.Signals(-code).name)
        self._log.flush()
        self._log.seek(0)
        return ChildFailure(error=last_error_line(self._log.read().decode(errors="replace")), exit_code=code)


def run_isolated(entry: str, /, **options: Any) -> Any:
    """``entry(**args)`` in a child of its own (options as :class:`Child`'s); its result, or a :class:`ChildFailure`."""
    with Child(entry, **options) as child:
        return child.result()


def needs_coremltools(artifact: Path | None) -> bool:
    """Whether a child working on ``artifact`` should load coremltools first (``preload_coremltools``)."""
    return artifact is not None and Path(artifact).suffix == ".mlpackage"


def last_error_line(stderr: str) -> str:
    """The last line a child printed (a Python error before the protocol started), at most 300 characters."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# ---- the child's side -----------------------------------------------------------------------


class NetworkBlocked(OSError):
    """Raised for every connection or name lookup in a child that must stay offline."""


def block_network(attempts: list[str]) -> None:
    """Make every internet access in this (child) process fail, and record it in ``attempts``.

    An audit hook (PEP 578) sees every connect and name lookup before it happens, whichever library
    makes it, and patches nothing; it lasts as long as the process, which exists for this work.
    """

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.getaddrinfo":
            what = f"name lookup {args[0]!r}"
        elif event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6):
            what = f"connect {args[1]!r}"
        else:
            return
        attempts.append(what)
        raise NetworkBlocked(f"network access blocked ({what})")

    sys.addaudithook(audit)


def _resolve(entry: str) -> Callable[..., Any]:
    module, _, name = entry.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def _serve_child() -> int:
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a library prints goes to the log, never into the protocol
    job = decode(sys.stdin.readline())
    attempts: list[str] = []
    if job["offline"]:
        block_network(attempts)
    if job["preload_coremltools"]:
        from convert.process import preload_coremltools

        preload_coremltools()

    def answer(work: Callable[[], Any], *, keep: bool = False) -> tuple[bool, Any]:
        """Run ``work`` and send its result (or None, when the child keeps it) or its error; whether it worked."""
        try:
            value = work()
            if attempts:
                raise NetworkBlocked(f"it tried to reach the network ({attempts[0]}); it must run offline")
        except Exception as exc:
            traceback.print_exc()
            text = (str(getattr(exc, "message", exc)).strip().splitlines() or [""])[0]  # without the argument it may lead with
            channel.write(encode({"error": {"type": type(exc).__name__, "message": text, "argument": getattr(exc, "argument", None)}}))
            return False, None
        channel.write(encode({"result": None if keep else value}))
        return True, value

    def emit(event: dict[str, Any]) -> None:
        channel.write(encode(event))

    kwargs = dict(job["args"])
    if job["events"]:
        kwargs["emit"] = emit
    ok, served = answer(lambda: _resolve(job["entry"])(**kwargs), keep=job["serve"])
    if not ok:
        return 1
    if job["serve"]:
        for line in sys.stdin:
            request = decode(line)
            if request.get("quit"):
                break
            method = getattr(served, request["method"])
            answer(lambda: method(**request["kwargs"]))  # noqa: B023  (called at once)
    return 0


if __name__ == "__main__":
    from convert.io.scratch import exit_with_parent

    exit_with_parent()
    sys.exit(_serve_child())
