"""Atomic output: build in a hidden staging folder beside the destination, rename into place when complete.

A failed, interrupted or killed run never leaves half a file and never destroys the previous output.
Every hidden name this toolkit creates starts with one of :data:`PREFIXES`, so a user-visible
folder can be recovered from a failing path, and a killed run's leftovers are swept by the next.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from convert.errors import OutputError

STAGING_PREFIX = ".shvit-staging-"
"""Staging folders of artifacts (``shvit-convert``, ``shvit-bench``)."""
TREE_STAGING_PREFIX = ".shvit-demo-staging-"
"""Staging folders of whole project trees (``shvit-demo``)."""
PREFIXES: tuple[str, ...] = (STAGING_PREFIX, TREE_STAGING_PREFIX)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
OLD_MARK = "-old-"


def output_dir_problem(out_dir: Path) -> str | None:
    """Why ``out_dir`` can never receive a file ("is a file", "is not writable (...)"), or None.

    Probes by writing, not with ``os.access``: root passes permission checks yet still cannot
    write to a read-only filesystem.
    """
    if out_dir.exists() and not out_dir.is_dir():
        return "is a file"
    probe = out_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"is inside {probe}, which is a file"
    try:
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as exc:
        return f"is not writable ({exc.strerror})"
    return None


def check_output_dir(out_dir: Path, *, argument: str = "out_dir") -> None:
    """Fail before any work when the output folder can never receive the artifact."""
    problem = output_dir_problem(out_dir)
    if problem:
        noun, fix = ("output path", "give a folder") if problem.endswith("a file") else ("output folder", "give a writable folder")
        raise OutputError(f"{noun} {out_dir} {problem}: {fix}", argument=argument)


def refuse_existing(out_dir: Path, names: list[str], *, force: bool) -> None:
    existing = [out_dir / n for n in names if (out_dir / n).exists()]
    if existing and not force:
        raise OutputError(f"{existing[0]} already exists: pass it to replace the file, or choose another output folder", argument="force")


def visible_folder(path: str | None) -> str | None:
    """The user-visible folder a failed write was aimed at (above any private staging folder)."""
    if not path:
        return None
    parts = Path(path).parts
    for index, part in enumerate(parts):
        if part.startswith(PREFIXES):
            return str(Path(*parts[:index])) if index else "."
    return str(Path(path).parent)


@dataclass
class Staging:
    """A private folder to build into; :meth:`commit` moves its entries into the output folder."""

    out_dir: Path
    root: Path
    names: list[str] = field(default_factory=list)

    def path(self, name: str) -> Path:
        """Where to write ``name`` while staging (recorded for commit)."""
        if name not in self.names:
            self.names.append(name)
        return self.root / name

    def commit(self) -> list[Path]:
        """Move every staged entry into place; a previous one is replaced only at the last moment.

        Each entry first gets the mode a new file would get (:func:`normalise_modes`): converters
        build in private temporary folders, so their files arrive 0600 and their folders 0700.
        """
        placed = []
        for name in self.names:
            src, dst = self.root / name, self.out_dir / name
            if not src.exists():
                raise OutputError(f"internal error: staged file {name} was never written")
            normalise_modes(src)
            replace(src, dst)
            placed.append(dst)
        return placed


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    ``os.umask`` can only be read by setting it, and the umask is process-wide: another thread
    creating a file between the set and the restore would get the wrong mode. Linux reports it in
    ``/proc/self/status``; elsewhere the set-and-restore is the only way.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split(":", 1)[1].strip(), 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def normalise_modes(path: Path, *, umask: int | None = None) -> None:
    """Give ``path`` and everything under it the mode a newly created entry would get under the umask.

    Files get ``0666 & ~umask`` (``0777 & ~umask`` when they were executable, so scripts stay
    runnable), folders ``0777 & ~umask``; symbolic links are left alone (their mode means nothing).
    """
    umask = current_umask() if umask is None else umask
    file_mode, exec_mode = 0o666 & ~umask, 0o777 & ~umask
    entries = [path]
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            entries += [Path(folder, name) for name in (*dirs, *files)]
    for entry in entries:
        info = entry.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        if stat.S_ISDIR(info.st_mode):
            mode = exec_mode
        else:
            mode = exec_mode if info.st_mode & stat.S_IXUSR else file_mode
        if stat.S_IMODE(info.st_mode) != mode:
            os.chmod(entry, mode)


def replace(src: Path, dst: Path) -> None:
    """``os.replace`` for files and folders alike; an old folder is parked, never half-deleted, until the swap."""
    if not dst.exists() or dst.is_symlink():
        os.replace(src, dst)
        return
    if not dst.is_dir():
        if src.is_dir():
            dst.unlink()
        os.replace(src, dst)
        return
    trash = dst.with_name(f"{_prefix_of(src)}{os.getpid()}{OLD_MARK}{dst.name}")
    os.replace(dst, trash)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(trash, dst)
        raise
    shutil.rmtree(trash, ignore_errors=True)


def _prefix_of(path: Path) -> str:
    for part in reversed(path.parts):
        for prefix in PREFIXES:
            if part.startswith(prefix):
                return prefix
    return STAGING_PREFIX


@contextlib.contextmanager
def created_folders(folder: Path) -> Iterator[None]:
    """Create ``folder`` and its missing parents; if the block fails, remove the ones made here while empty."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for made in created:
            try:
                made.rmdir()
            except OSError:  # not empty: something else lives there now
                break
        raise


@contextlib.contextmanager
def staging_folder(parent: Path, *, prefix: str, disk_full: Callable[[], Exception]) -> Iterator[Path]:
    """A private ``<prefix><pid>-*`` folder in ``parent`` (created, with its parents, if missing), always removed.

    A full disk while writing into it becomes ``disk_full()``, an error that says nothing partial is left.
    """
    with created_folders(parent):
        sweep_stale(parent, prefix=prefix)
        root = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
        try:
            yield root
        except OSError as exc:
            if exc.errno in DISK_FULL and (exc.filename is None or str(root) in str(exc.filename)):
                raise disk_full() from exc
            raise
        finally:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def staged_output(out_dir: Path, names: list[str], *, force: bool) -> Iterator[Staging]:
    """Staging for the files ``names`` of ``out_dir``; removed on any failure or interruption (Ctrl-C included).

    An existing output is refused unless ``force``; with ``force`` it is replaced only once the new one is complete.
    """
    check_output_dir(out_dir)
    refuse_existing(out_dir, names, force=force)

    def disk_full() -> Exception:
        return OutputError(
            f"no space left on the device writing to {out_dir} (no partial files left): free some space or write to another folder",
            argument="out_dir",
        )

    with staging_folder(out_dir, prefix=STAGING_PREFIX, disk_full=disk_full) as root:
        yield Staging(out_dir, root)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Complete file or none: written beside ``path`` (hidden) then renamed over it."""
    with created_folders(path.parent):
        fd, tmp = tempfile.mkstemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def sweep_stale(folder: Path, *, prefix: str) -> list[Path]:
    """Remove ``prefix`` entries left by a killed run (SIGKILL leaves no chance to clean up in-process).

    Entries of a run still alive are left alone; a previous output parked mid-swap is put back.
    """
    removed = []
    for entry in folder.glob(f"{prefix}*"):
        pid_text = entry.name.removeprefix(prefix).split("-", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        kept_name = entry.name.split(OLD_MARK, 1)[1] if OLD_MARK in entry.name else None
        if kept_name and not (folder / kept_name).exists():
            os.replace(entry, folder / kept_name)  # killed mid-swap: the previous output comes back
            continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
