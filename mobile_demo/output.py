"""Atomic output of a whole project tree: build in a hidden sibling folder, then rename into place.

A failed, interrupted or killed generation leaves nothing behind and never touches the previous
demo; ``--force`` replaces only a folder this tool wrote (it carries :data:`MARKER`), so a typo in
``--out`` cannot wipe an unrelated folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from convert.io.sidecar import read_sidecar, sha256_path
from convert.io.staging import DISK_FULL, TREE_STAGING_PREFIX, output_dir_problem, replace, staging_folder, sweep_stale
from mobile_demo.errors import DemoError
from shvit.provenance import is_random

MARKER = "shvit-demo.json"
STAGING_PREFIX = TREE_STAGING_PREFIX


def generator_name() -> str:
    """``shvit-demo <version>``, recorded in :data:`MARKER` so a demo can be traced to its generator."""
    from importlib import metadata

    try:
        return f"shvit-demo {metadata.version('shvit-mobile')}"
    except metadata.PackageNotFoundError:
        return "shvit-demo (not installed)"


def model_record(model: Path) -> dict[str, object]:
    """The model as a demo's marker records it: file name, hash and the weights its sidecar names (no local paths)."""
    sidecar, _ = read_sidecar(model)
    weights = (sidecar or {}).get("weights", {})
    record: dict[str, object] = {"model": model.name, "model_sha256": sha256_path(model)}
    if weights.get("source"):
        record["weights"] = str(weights["source"])
    return record


def random_weights_warning(model: Path) -> str | None:
    """A demo around a random-weights try-out shows meaningless labels: say so before building it."""
    sidecar, _ = read_sidecar(model)
    if not is_random((sidecar or {}).get("weights", {})):
        return None
    return (
        f"warning: {model.name} was exported from random weights: the app will run, but its "
        "labels mean nothing; export the released ImageNet weights (or your checkpoint) for a real demo"
    )


def check_destination(out_dir: Path, *, model: Path, force: bool) -> None:
    """Refuse, before any work, an output folder that cannot or must not receive the demo."""
    out_abs, model_abs = out_dir.resolve(), model.resolve()
    if out_abs == model_abs or out_abs in model_abs.parents:
        raise DemoError(f"{out_dir} contains the model {model}: choose a new folder for the demo app", argument="out_dir")
    if model_abs in out_abs.parents:
        raise DemoError(f"{out_dir} is inside the model package {model}: choose a folder outside it", argument="out_dir")
    if out_dir.exists() and not out_dir.is_dir():
        raise DemoError(f"{out_dir} is a file: give a folder (it is created if missing)", argument="out_dir")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise DemoError(
                f"{out_dir} already exists and is not empty: pass it to replace the folder, or choose another output folder",
                argument="force",
            )
        if not (out_dir / MARKER).is_file():
            raise DemoError(
                f"{out_dir} is not a demo written by shvit-demo (no {MARKER} in it), so it is never replaced: "
                "choose another output folder or remove the folder yourself",
                argument="out_dir",
            )
    problem = output_dir_problem(out_abs.parent)
    if problem:
        raise DemoError(f"cannot create {out_dir}: its folder {out_abs.parent} {problem}; give a writable folder", argument="out_dir")


@contextlib.contextmanager
def staged_tree(out_dir: Path, *, model: Path, force: bool) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out_dir``; on success it becomes ``out_dir``."""
    parent = out_dir.resolve().parent
    if parent.is_dir():
        sweep_stale(parent, prefix=STAGING_PREFIX)
    check_destination(out_dir, model=model, force=force)

    def disk_full() -> DemoError:
        return DemoError(
            f"no space left on the device writing to {out_dir} (no partial files left): free some space or write to another folder",
            argument="out_dir",
        )

    try:
        with staging_folder(parent, prefix=STAGING_PREFIX, disk_full=disk_full) as staging:
            yield staging
            replace(staging, out_dir.resolve())
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full() from exc
        raise DemoError(f"could not write the demo to {out_dir}: {exc.strerror or exc}; nothing was written") from exc
