"""Run an exported artifact in its target's runtime, in a subprocess.

Native runtimes abort on malformed graphs (LiteRT's ``allocate_tensors`` SIGABRT, for one): in a
child process that becomes a :class:`RuntimeCrash` with the signal's name, never a dead CLI.
Every target's ``run`` takes the same input, uint8 RGB pixels (N, H, W, 3) from :mod:`calib`, and
adapts layout and dtype itself, so a comparison always feeds every runtime identical pixels.
The child (:mod:`convert.io.child`) finds the target by module and name, so a plugin target runs like a built-in one.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from convert import targets
from convert.errors import ConvertError, RuntimeCrash
from convert.io.child import DEFAULT_TIMEOUT_S, ChildFailure, needs_coremltools, run_isolated
from convert.io.scratch import Scratch
from convert.targets import ArtifactFacts, Target

INSPECT_TIMEOUT_S = 300.0


def _where(target: Target) -> dict[str, str]:
    return {"module": type(target).__module__, "name": target.name}


def child_target(module: str, name: str) -> Target:
    """In a child: import the module that defines (or registers) the target, then ask the registry."""
    importlib.import_module(module)
    return targets.get(name)


def run_artifact(
    artifact: Path,
    pixels: np.ndarray,
    *,
    scratch: Scratch,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    threads: int | None = None,
) -> tuple[np.ndarray, str]:
    """Logits of ``artifact`` on ``pixels`` and the name of the runtime that produced them."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise ConvertError(f"{artifact} does not exist")
    target = targets.for_path(artifact)
    targets.require_toolchain(target)
    try:
        logits, runtime = run_isolated(
            "convert.validate.runner:predict",
            args={**_where(target), "artifact": artifact, "pixels": np.ascontiguousarray(pixels, dtype=np.uint8), "threads": threads},
            threads=threads,
            env=scratch.child_env(),
            timeout_s=timeout_s,
            preload_coremltools=needs_coremltools(artifact),
        )
    except ChildFailure as exc:
        raise RuntimeCrash(f"{artifact.name}: {exc.describe('the runtime', 'while loading or running the model')}") from None
    return logits, runtime


def inspect_artifact(artifact: Path, *, scratch: Scratch, timeout_s: float = INSPECT_TIMEOUT_S) -> ArtifactFacts:
    """What ``artifact``'s own file says, read in a child process (toolchains are slow to import and noisy,
    and a malformed file must never take the caller down); a :class:`ConvertError` says why not."""
    target = targets.for_path(artifact)
    targets.require_toolchain(target)
    try:
        facts = run_isolated(
            "convert.validate.runner:inspect",
            args={**_where(target), "artifact": Path(artifact)},
            env=scratch.child_env(),
            timeout_s=timeout_s,
            preload_coremltools=needs_coremltools(artifact),
        )
    except ChildFailure as exc:
        raise ConvertError(exc.describe("the graph reader", "while reading the graph")) from None
    return ArtifactFacts(**facts)


# ---- inside the child -------------------------------------------------------------------------


def predict(*, module: str, name: str, artifact: str, pixels: np.ndarray, threads: int | None) -> tuple[np.ndarray, str]:
    loaded = child_target(module, name).runtime.open(Path(artifact), threads=threads)
    return np.asarray(loaded.predict(pixels), dtype=np.float32), loaded.runtime


def inspect(*, module: str, name: str, artifact: str) -> dict[str, Any]:
    return asdict(child_target(module, name).runtime.inspect(Path(artifact)))
