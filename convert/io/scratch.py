"""One scratch folder per run, handed explicitly to whatever needs temporary files.

Every temporary file of a run — ours, the converters', those of the runtime children — goes under
``<system temp>/shvit-scratch-<pid>-*``, removed when the run ends, however it ends. Children get
the folder as their ``TMPDIR`` (:meth:`Scratch.child_env`); an in-process library that picks its
own temporary paths (coremltools) is pointed there only for the call that needs it
(:meth:`Scratch.hosting`). A run killed with SIGKILL cannot clean up: the next run sweeps folders
whose process is gone, and children call :func:`exit_with_parent` so none outlives a killed CLI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from convert.io.staging import sweep_stale

SCRATCH_PREFIX = "shvit-scratch-"


@dataclass(frozen=True)
class Scratch:
    """A run's private temporary folder (``root``) inside the system's temporary folder (``base``)."""

    root: Path
    base: Path

    @classmethod
    @contextlib.contextmanager
    def open(cls, base: Path | None = None) -> Iterator[Scratch]:
        """Create the folder (sweeping those of killed runs first); remove it when the block ends."""
        base = Path(base or tempfile.gettempdir())
        with contextlib.suppress(OSError):
            sweep_stale(base, prefix=SCRATCH_PREFIX)
        root = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=base))
        try:
            yield cls(root, base)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def folder(self, prefix: str) -> Path:
        """A new sub-folder; removed with the scratch, or earlier by the caller."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))

    @contextlib.contextmanager
    def temporary(self, prefix: str) -> Iterator[Path]:
        """A sub-folder removed as soon as the block ends."""
        path = self.folder(prefix)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def child_env(self) -> dict[str, str]:
        """Environment for a child process so its temporary files land here."""
        return {"TMPDIR": str(self.root)}

    def keep(self, path: Path, *, prefix: str) -> Path:
        """Move ``path`` (a failure's log, for the user to read) out of the scratch folder; its new path."""
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=self.base))
        return Path(shutil.move(str(path), folder / path.name))


def exit_with_parent(*, poll_s: float = 0.5) -> None:
    """In a child process: exit as soon as the parent dies (a SIGKILLed CLI leaves no orphan)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
