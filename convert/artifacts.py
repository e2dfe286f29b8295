"""Atomic output: artifacts are built in a hidden staging folder beside their destination and moved
into place only when complete, so a failed, interrupted or killed export never leaves half a file
and never destroys the previous artifact. Every artifact gets a JSON sidecar tracing it to the
weights and toolkit that made it.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convert.errors import ConvertError

STAGING_PREFIX = ".shvit-staging-"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def sha256_path(path: Path) -> str:
    """Hash of a file, or of a directory's files in sorted order (for ``.mlpackage`` bundles)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


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


def check_output_dir(out_dir: Path) -> None:
    """Fail before any work when the output folder can never receive the artifact."""
    problem = output_dir_problem(out_dir)
    if problem:
        noun, fix = ("output path", "pass a folder") if problem.endswith("a file") else ("output folder", "pass a writable folder")
        raise ConvertError(f"{noun} {out_dir} {problem}: {fix} with --out")


@dataclass
class Staging:
    """A private folder to build into; :meth:`commit` moves its files into the output folder."""

    out_dir: Path
    root: Path
    names: list[str] = field(default_factory=list)

    def path(self, name: str) -> Path:
        """Where to write ``name`` while staging (recorded for commit)."""
        if name not in self.names:
            self.names.append(name)
        return self.root / name

    def commit(self) -> list[Path]:
        """Move every staged file into place; replacing a previous artifact only at the last moment."""
        placed = []
        for name in self.names:
            src, dst = self.root / name, self.out_dir / name
            if not src.exists():
                raise ConvertError(f"internal error: staged file {name} was never written")
            _replace(src, dst)
            placed.append(dst)
        return placed


def _replace(src: Path, dst: Path) -> None:
    if src.is_dir():
        if dst.exists():
            trash = dst.with_name(f"{STAGING_PREFIX}{os.getpid()}-old-{dst.name}")
            os.replace(dst, trash)
            os.replace(src, dst)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(src, dst)
    else:
        if dst.is_dir():
            shutil.rmtree(dst)
        os.replace(src, dst)


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
def staged_output(out_dir: Path, artifact_names: list[str], *, force: bool) -> Iterator[Staging]:
    """Staging folder inside ``out_dir``; removed on any failure or interruption (Ctrl-C included).

    An existing artifact is refused unless ``force``; with ``force`` it is replaced only once the
    new one is complete.
    """
    check_output_dir(out_dir)
    existing = [out_dir / n for n in artifact_names if (out_dir / n).exists()]
    if existing and not force:
        raise ConvertError(f"{existing[0]} already exists: pass --force to replace it, or choose another --out")
    with created_folders(out_dir):
        sweep_stale_staging(out_dir)
        root = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out_dir))
        try:
            yield Staging(out_dir, root)
        except OSError as exc:
            if exc.errno in DISK_FULL and (exc.filename is None or str(root) in str(exc.filename)):
                raise ConvertError(
                    f"no space left on the device writing to {out_dir} (no partial files left): free some space or pass another --out"
                ) from exc
            raise
        finally:
            shutil.rmtree(root, ignore_errors=True)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Complete file or none: written beside ``path`` (hidden) then renamed over it."""
    with created_folders(path.parent):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def sweep_stale_staging(out_dir: Path, *, prefix: str = STAGING_PREFIX) -> list[Path]:
    """Remove staging folders left by a killed run (SIGKILL leaves no chance to clean up in-process).

    Folders of a run still alive are left alone; a previous artifact parked mid-swap is put back.
    """
    removed = []
    for entry in out_dir.glob(f"{prefix}*"):
        pid_text = entry.name.removeprefix(prefix).split("-", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        kept_name = entry.name.split("-old-", 1)[1] if "-old-" in entry.name else None
        if kept_name and not (out_dir / kept_name).exists():
            os.replace(entry, out_dir / kept_name)  # killed mid-swap: the previous artifact comes back
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


def toolkit_versions() -> dict[str, str]:
    """Versions of everything that shapes an artifact's bytes."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("shvit-mobile", "torch", "onnx", "onnxruntime", "onnxsim", "coremltools", "onnx2tf", "tensorflow", "ai-edge-litert"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def write_sidecar(path: Path, *, artifact: Path, config: dict[str, Any], weights: dict[str, Any], extra: dict[str, Any]) -> None:
    """``<artifact>.json``: inputs, versions and hashes, so the artifact can be traced and reproduced."""
    record = {
        "artifact": artifact.name,
        "sha256": sha256_path(artifact),
        "config": config,
        "weights": weights,
        "versions": toolkit_versions(),
        **extra,
    }
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
