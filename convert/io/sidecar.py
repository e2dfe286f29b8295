"""The ``<artifact>.json`` sidecar: inputs, versions and hashes, so every artifact can be traced and reproduced."""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
from pathlib import Path
from typing import Any

TRACKED_DISTRIBUTIONS: tuple[str, ...] = (
    "shvit-mobile",
    "torch",
    "onnx",
    "onnxruntime",
    "onnxsim",
    "coremltools",
    "onnx2tf",
    "tensorflow",
    "ai-edge-litert",
    "coreai-torch",
    "coreai-core",
)
"""Packages whose versions shape an artifact's bytes."""


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


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def toolkit_version() -> str:
    """This toolkit's version, as artifacts' metadata records it."""
    from importlib import metadata

    try:
        return metadata.version("shvit-mobile")
    except metadata.PackageNotFoundError:
        import shvit

        return shvit.__version__


def toolkit_versions() -> dict[str, str]:
    """Versions of everything that shapes an artifact's bytes."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in TRACKED_DISTRIBUTIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def sidecar_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".json")


def sidecar_record(*, artifact: Path, config: dict[str, Any], weights: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "artifact": artifact.name,
        "sha256": sha256_path(artifact),
        "config": config,
        "weights": weights,
        "versions": toolkit_versions(),
        **extra,
    }


def write_sidecar(path: Path, record: dict[str, Any]) -> None:
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def read_sidecar(artifact: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``<artifact>.json`` written by ``shvit-convert``, or why it could not be used."""
    sidecar = sidecar_path(artifact)
    if not sidecar.is_file():
        return None, None
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"sidecar {sidecar.name} is unreadable ({type(exc).__name__}); ignored"
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        return None, f"sidecar {sidecar.name} is not a shvit-convert sidecar; ignored"
    if data.get("sha256") and data["sha256"] != sha256_path(artifact):
        return None, f"sidecar {sidecar.name} describes another file (sha256 differs: the artifact was modified); ignored"
    return data, None
