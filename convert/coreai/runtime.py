"""Core AI backend for parity and timing subprocesses: runs a saved ``.aimodel`` asset.

Off macOS 27 there is no Core AI framework: ``AIModelAsset.executable()`` lowers the program to
coreai-core's bundled reference runtime (CPU, no Neural Engine or GPU), which is what runs here.
``AIModel.load(path)`` on the asset itself only works where the OS framework exists. The reference
runtime has no thread setting and no image (CVPixelBuffer) inputs on Linux, so pixels go in as an
NCHW float32 ``NDArray``. Its latency is a CPU reference figure, never a device one.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import weakref
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import numpy as np

from convert.coreai.deps import require
from convert.coreai.export import ENTRYPOINT, INPUT_NAME, LOGITS_NAME
from convert.errors import ConvertError
from convert.targets import ArtifactFacts, Loaded, RuntimeBase


def runtime_description() -> str:
    """Which Core AI runtime executes assets in this process, said plainly."""
    version = require("coreai._version").__version__
    if sys.platform == "darwin" and require("coreai.runtime")._use_os_coreai:
        return f"Core AI framework of macOS {platform.mac_ver()[0]} (coreai-core {version})"
    return f"Core AI Linux reference runtime (coreai-core {version}, CPU; not the Core AI framework, not a device figure)"


def run(path: Path, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    """Float32 logits (N, classes) of uint8 RGB ``pixels`` (N, H, W, 3), and the runtime that produced them."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ConvertError(f"pixels must be N x H x W x 3 RGB, got shape {pixels.shape}")
    x = pixels.astype(np.float32).transpose(0, 3, 1, 2)
    return asyncio.run(_run_all(Path(path), x)), runtime_description()


async def _run_all(path: Path, x: np.ndarray) -> np.ndarray:
    ndarray = require("coreai.runtime").NDArray
    async with _executable(path) as model:
        function = model.load_function(ENTRYPOINT)
        _check_input(path, function, x.shape[1:])
        outputs = []
        for image in x:
            result = await function({INPUT_NAME: ndarray(np.ascontiguousarray(image[None]))})
            # coreai-core 1.0.0b3's NDArray.numpy() is a zero-copy view of the runtime's buffer: copy it out
            outputs.append(np.array(result[LOGITS_NAME].numpy(), dtype=np.float32, copy=True).reshape(-1))
    return np.stack(outputs)


def timing_step(path: Path, pixels: np.ndarray) -> Callable[[], object]:
    """One inference of ``pixels`` per call, the asset loaded once; for :func:`convert.bench.latency.time_runs`."""
    runtime = require("coreai.runtime")
    loop = asyncio.new_event_loop()
    context = _executable(Path(path))
    model = loop.run_until_complete(context.__aenter__())
    weakref.finalize(model, _close, loop, context)
    function = model.load_function(ENTRYPOINT)
    x = pixels.astype(np.float32).transpose(0, 3, 1, 2)
    _check_input(Path(path), function, x.shape[1:])
    feed = {INPUT_NAME: runtime.NDArray(np.ascontiguousarray(x))}

    def step() -> object:
        return loop.run_until_complete(function(feed))

    return step


class CoreAIRuntime(RuntimeBase):
    def open(self, path: Path, *, threads: int | None) -> Loaded:
        """``threads`` is recorded, not applied: the reference runtime has no thread setting."""
        described = runtime_description() + (f", its own threading ({threads} requested, no setting exists)" if threads else "")
        return Loaded(lambda pixels: run(path, pixels)[0], described, lambda pixels: timing_step(path, pixels))

    def inspect(self, path: Path) -> ArtifactFacts:
        from convert.coreai.inspect import facts

        read = facts(path)
        return ArtifactFacts(
            input_size=read["input_size"],
            num_classes=read["num_classes"],
            precision=read["precision"],
            ops=read["ops"],
            extra={"minimum_os": read["minimum_os"], "labels": read["labels"]},
        )


def _executable(path: Path) -> AbstractAsyncContextManager[Any]:
    asset_cls = require("coreai.authoring").AIModelAsset
    if not asset_cls.is_valid(path):
        raise ConvertError(f"{path} is not a Core AI asset (a *.aimodel folder with main.mlirb and metadata.json)")
    return asset_cls.load(path).executable()


def _check_input(path: Path, function: Any, chw: tuple[int, ...]) -> None:
    expected = tuple(function.desc.input_descriptor(INPUT_NAME).shape)
    if expected[1:] != tuple(chw):
        raise ConvertError(
            f"{path.name} takes {INPUT_NAME} of shape {list(expected)}, images give {[1, *chw]}: wrong variant or input size?"
        )


def _close(loop: asyncio.AbstractEventLoop, context: AbstractAsyncContextManager[Any]) -> None:
    if not loop.is_closed():
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


RUNTIME = CoreAIRuntime()
