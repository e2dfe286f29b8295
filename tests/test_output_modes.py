"""Outputs get the user's normal file mode: a Core ML package is as readable as the sidecar beside it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import convert
from convert.io import staging


@pytest.fixture()
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(root: Path) -> dict[str, int]:
    entries = [root, *root.rglob("*")]
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.lstat().st_mode) for p in entries if not p.is_symlink()}


def test_every_file_and_folder_of_a_coreml_package_is_readable_by_others(tiny, tmp_path: Path, umask_022: None) -> None:
    result = convert.export(tiny.checkpoint, target="coreml", out_dir=tmp_path / "out", input_size=tiny.input_size, labels=tiny.labels_file)
    package = result.path
    assert package.is_dir() and package.suffix == ".mlpackage"
    modes = _modes(package)
    assert any(name.endswith("model.mlmodel") for name in modes) and any(name.endswith("weight.bin") for name in modes)
    files = {name: mode for name, mode in modes.items() if (tmp_path / "out" / name).is_file()}
    folders = {name: mode for name, mode in modes.items() if name not in files}
    assert all(mode == 0o644 for mode in files.values()), {n: oct(m) for n, m in files.items() if m != 0o644}
    assert all(mode == 0o755 for mode in folders.values()), {n: oct(m) for n, m in folders.items() if m != 0o755}
    sidecar = Path(f"{package}.json")
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o644


def test_commit_gives_staged_entries_the_mode_of_a_new_file(tmp_path: Path) -> None:
    """A converter's private 0600/0700 temporary files become 0666/0777 less the umask; executables stay executable."""
    previous = os.umask(0o027)
    try:
        with staging.staged_output(tmp_path / "out", ["bundle", "single.bin"], force=False) as staged:
            bundle = staged.path("bundle")
            (bundle / "inner").mkdir(parents=True, mode=0o700)
            (bundle / "inner" / "data").write_bytes(b"x")
            (bundle / "inner" / "data").chmod(0o600)
            (bundle / "tool.sh").write_text("#!/bin/sh\n")
            (bundle / "tool.sh").chmod(0o700)
            bundle.chmod(0o700)
            staged.path("single.bin").write_bytes(b"y")
            staged.path("single.bin").chmod(0o600)
            staged.commit()
        assert os.umask(0o027) == 0o027, "committing must leave the process umask as it was"
    finally:
        os.umask(previous)
    out = tmp_path / "out"
    assert stat.S_IMODE((out / "single.bin").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "bundle").stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "bundle" / "inner").stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "bundle" / "inner" / "data").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "bundle" / "tool.sh").stat().st_mode) == 0o750


def test_the_umask_is_read_without_changing_it(umask_022: None) -> None:
    assert staging.current_umask() == 0o022
    os.umask(0o077)
    assert staging.current_umask() == 0o077
    assert os.umask(0o022) == 0o077
