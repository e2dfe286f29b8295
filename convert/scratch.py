"""One scratch folder per command run, so no temporary file outlives it.

Every temporary file of a run — ours, coremltools', onnx2tf's, those of the runtime children — goes
under ``<system temp>/shvit-scratch-<pid>-*``: :func:`run_scratch` points :mod:`tempfile` (and
``TMPDIR`` for children) there and removes the folder when the command ends, however it ends.
A run killed with SIGKILL cannot clean up in-process: the next run sweeps folders whose process
is gone. Children call :func:`exit_with_parent` so a killed CLI leaves no orphan writing files.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from convert.artifacts import sweep_stale_staging

SCRATCH_PREFIX = "shvit-scratch-"
_lasting_tempdir: str | None = None


@contextlib.contextmanager
def run_scratch() -> Iterator[Path]:
    """Redirect this process's (and its children's) temporary files into a private folder."""
    global _lasting_tempdir
    base = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        sweep_stale_staging(Path(base), prefix=SCRATCH_PREFIX)
    root = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=base))
    saved = tempfile.tempdir, os.environ.get("TMPDIR"), _lasting_tempdir
    tempfile.tempdir, os.environ["TMPDIR"], _lasting_tempdir = str(root), str(root), base
    try:
        yield root
    finally:
        tempfile.tempdir, _lasting_tempdir = saved[0], saved[2]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(root, ignore_errors=True)


def keep_file(path: Path, *, prefix: str) -> Path:
    """Move ``path`` (a failure's log, for the user to read) out of the scratch folder; its new path."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=_lasting_tempdir or tempfile.gettempdir()))
    return Path(shutil.move(str(path), folder / path.name))


def exit_with_parent(*, poll_s: float = 0.5) -> None:
    """In a child process: exit as soon as the parent dies (a SIGKILLed CLI leaves no orphan)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
