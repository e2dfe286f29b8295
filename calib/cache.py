"""On-disk cache of preprocessed image folders.

Decoding and resizing a few thousand photos takes far longer than reading one
.npz, and the parity checker and the int8 exporters load the same folders
again and again. Keys cover every input that can change the pixels, so a stale
entry is never served; entries are written atomically so a crash or a parallel
run never leaves a half-written file that another run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL

from .preprocess import PREPROCESS_VERSION

CACHE_ENV_VAR = "SHVIT_CACHE_DIR"

FileStamp = tuple[str, int, int]
"""(relative posix path, size in bytes, mtime in ns): cheap to collect even for ImageNet-val."""


def default_cache_dir() -> Path:
    """`$SHVIT_CACHE_DIR/calib`, else `~/.cache/shvit-mobile/calib`."""
    base = os.environ.get(CACHE_ENV_VAR)
    if base:
        return Path(base).expanduser() / "calib"
    return Path.home() / ".cache" / "shvit-mobile" / "calib"


def cache_key(stamps: list[FileStamp], **options: Any) -> str:
    """Hash of the folder listing, file stamps, loader options and decoder version."""
    payload = {
        "version": PREPROCESS_VERSION,
        "pillow": PIL.__version__,
        "options": options,
        "files": stamps,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("ascii")).hexdigest()[:40]


def read_entry(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays stored at `path`, or None when it is missing or unreadable."""
    try:
        with open(path, "rb") as stream, np.load(stream, allow_pickle=False) as data:
            return {name: np.array(data[name]) for name in data.files}
    except FileNotFoundError:
        return None
    except Exception:
        # Any damage (truncation, foreign file, bad zip) just means "recompute".
        return None


def write_entry(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` to `path` via a temporary file in the same folder and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            # numpy's stubs let **kwds fill savez's allow_pickle: bool; these keys are array names.
            np.savez(stream, **arrays)  # type: ignore[arg-type]
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
