"""Run an exported artifact in its target's runtime, in a subprocess.

Native runtimes abort on malformed graphs (LiteRT's ``allocate_tensors`` SIGABRT, for one): in a
child process that becomes a :class:`RuntimeCrash` with the signal's name, never a dead CLI.
Every target's ``run`` takes the same input, uint8 RGB pixels (N, H, W, 3) from :mod:`calib`, and
adapts layout and dtype itself, so a comparison always feeds every runtime identical pixels.
The child finds the target by module and name, so a plugin target runs like a built-in one.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from convert import targets
from convert.errors import ConvertError, RuntimeCrash
from convert.io.child import ChildFailure, report_child_error, run_child
from convert.io.scratch import Scratch
from convert.targets import ArtifactFacts, Target

DEFAULT_TIMEOUT_S = 900.0
INSPECT_TIMEOUT_S = 300.0


def _where(target: Target) -> list[str]:
    return [type(target).__module__, target.name]


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
    with scratch.temporary("shvit-run-") as tmp:
        inp, out = tmp / "in.npy", tmp / "out.npz"
        np.save(inp, np.ascontiguousarray(pixels, dtype=np.uint8))
        command = ["convert.validate.runner", "run", *_where(target), str(artifact), str(inp), str(out), str(threads or 0)]
        try:
            run_child(command, timeout_s=timeout_s, env=scratch.child_env())
        except ChildFailure as exc:
            raise RuntimeCrash(f"{artifact.name}: {exc.describe('the runtime', 'while loading or running the model')}") from None
        if not out.exists():
            raise RuntimeCrash(f"{artifact.name}: the runtime wrote no result")
        with np.load(out) as data:
            return data["logits"], str(data["runtime"])


def inspect_artifact(artifact: Path, *, scratch: Scratch, timeout_s: float = INSPECT_TIMEOUT_S) -> ArtifactFacts:
    """What ``artifact``'s own file says, read in a subprocess (toolchains are slow to import and noisy,
    and a malformed file must never take the caller down); a :class:`ConvertError` says why not."""
    target = targets.for_path(artifact)
    targets.require_toolchain(target)
    try:
        proc = run_child(
            ["convert.validate.runner", "inspect", *_where(target), str(artifact)], timeout_s=timeout_s, env=scratch.child_env()
        )
    except ChildFailure as exc:
        raise ConvertError(exc.describe("the graph reader", "while reading the graph")) from None
    lines = proc.stdout.strip().splitlines()
    facts = json.loads(lines[-1]) if lines else {}
    return ArtifactFacts(**facts)


def _run(module: str, name: str, artifact: str, inp: str, out: str, threads: str) -> None:
    logits, runtime = child_target(module, name).run(Path(artifact), np.load(inp), threads=int(threads) or None)
    np.savez(out, logits=np.asarray(logits, dtype=np.float32), runtime=np.array(runtime))


def _inspect(module: str, name: str, artifact: str) -> None:
    facts = child_target(module, name).inspect(Path(artifact))
    print(
        json.dumps(
            {
                "input_size": facts.input_size,
                "num_classes": facts.num_classes,
                "precision": facts.precision,
                "ops": facts.ops,
                "extra": facts.extra,
            },
            default=str,
        )
    )


def _child(command: str, *args: str) -> int:
    """Entry point inside the subprocess; every failure is reported to the parent as one line."""
    try:
        commands: dict[str, Callable[..., None]] = {"run": _run, "inspect": _inspect}
        commands[command](*args)
    except Exception as exc:
        report_child_error(exc)
        return 1
    return 0


if __name__ == "__main__":
    from convert.io.scratch import exit_with_parent

    exit_with_parent()
    if any(arg.endswith(".mlpackage") for arg in sys.argv[1:]):
        from convert.process import preload_coremltools

        preload_coremltools()
    sys.exit(_child(*sys.argv[1:]))
