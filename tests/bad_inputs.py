"""The inputs users really get wrong, and the hostile machines they run on, built for every command's tests.

Each builder writes into a folder the test owns; the machine helpers (a read-only folder, a full
disk, a user who may not read) use real kernel mechanisms, not mocks, where the test runs as root.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch

import shvit

PWNED_MARKER = Path("/tmp/shvit-pwned")


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {PWNED_MARKER}",))


def checkpoint(kind: str, root: Path) -> Path:
    """A bad checkpoint file of a kind users have handed us."""
    path = root / f"{kind}.pth"
    if kind == "other_variant":
        torch.save({"model": shvit.create_model("s2").state_dict()}, path)
    elif kind == "other_architecture":
        torch.save({"model": {"conv1.weight": torch.zeros(8, 3, 7, 7)}}, path)
    elif kind == "truncated":
        torch.save({"model": shvit.create_model("s1").state_dict()}, path)
        path.write_bytes(path.read_bytes()[:100_000])
    elif kind == "random_bytes":
        path.write_bytes(os.urandom(50_000))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "exploit":
        path.write_bytes(pickle.dumps({"model": {"x": _Exploit()}}, protocol=2))
    elif kind == "directory":
        path.mkdir()
    else:
        raise ValueError(kind)
    return path


def labels(kind: str, root: Path, *, classes: int) -> Path:
    """A class-names file that does not fit a ``classes``-way head."""
    path = root / f"labels_{kind}.txt"
    if kind == "wrong_count":
        path.write_text("\n".join(f"c{i}" for i in range(classes - 1)) + "\n")
    elif kind == "blank_lines":
        path.write_text("\n".join(["a", "", *[f"c{i}" for i in range(classes - 2)]]) + "\n")
    elif kind == "duplicates":
        path.write_text("\n".join(["same"] * classes) + "\n")
    else:
        raise ValueError(kind)
    return path


def image_folder(kind: str, root: Path) -> Path:
    """A calibration/evaluation folder that cannot give a single image."""
    path = root / f"images_{kind}"
    if kind == "empty":
        path.mkdir()
    elif kind == "all_bad":
        path.mkdir()
        (path / "a.jpg").write_text("not a jpeg")
        (path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    elif kind == "file":
        path.write_text("x")
    elif kind != "missing":
        raise ValueError(kind)
    return path


def files_under(root: Path) -> set[str]:
    """Every path under ``root`` (hidden ones included): what a failed command must leave unchanged."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_one_error_line(stderr: str, *, prog: str, message: str) -> None:
    """One ``prog: error:`` line, naming the problem, printed last, with no traceback before it."""
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"{prog}: error: ") and message in errors[0], stderr
    assert stderr.strip().splitlines()[-1] == errors[0], f"the error must be the last line printed:\n{stderr}"
    assert "Traceback" not in stderr and "\r" not in stderr, stderr


@contextlib.contextmanager
def read_only_dir(root: Path) -> Iterator[Path]:
    """A folder no one may write to: a read-only mount as root (who ignores permissions), chmod otherwise."""
    path = root / "ro"
    path.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True).returncode:
            pytest.skip("running as root without permission to mount: cannot build a read-only folder")
        try:
            yield path
        finally:
            subprocess.run(["umount", str(path)], capture_output=True)
    else:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)


@contextlib.contextmanager
def small_disk(root: Path, *, megabytes: int) -> Iterator[Path]:
    """A real filesystem of ``megabytes`` that fills up (ENOSPC from the kernel, not a mock); needs root."""
    path = root / "disk"
    path.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
            capture_output=True,
        ).returncode
    ):
        pytest.skip("a real full disk needs root and mount (tmpfs); the in-process ENOSPC test covers this machine")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def unprivileged(command: Sequence[str]) -> list[str]:
    """``command`` run so that file permissions apply: as root, without the capabilities that bypass them."""
    if os.geteuid() != 0:
        return list(command)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permission bits cannot be made to apply")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--", *command]


@contextlib.contextmanager
def unreadable(path: Path) -> Iterator[Path]:
    """``path`` with every permission bit cleared (see :func:`unprivileged` for root)."""
    mode = path.stat().st_mode
    path.chmod(0)
    try:
        yield path
    finally:
        path.chmod(mode)
