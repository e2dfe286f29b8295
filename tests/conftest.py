"""Fixtures shared by the suite: an isolated cache, no network, and the tiny trained model."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tiny_model


def _load_triton_before_tensorflow() -> None:
    """With PyTorch's CUDA build, importing triton after TensorFlow segfaults (triton/knobs.py). The toolkit keeps
    TensorFlow in child processes; a few tests run it in-process, so triton (through torch._dynamo, as coremltools
    loads it) comes first, whatever order the tests run in."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        import torch._dynamo  # noqa: F401


_load_triton_before_tensorflow()

_LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's ~/.cache; each test session gets its own."""
    if "SHVIT_CACHE_DIR" not in os.environ or not os.environ["SHVIT_CACHE_DIR"].startswith(str(tmp_path_factory.getbasetemp())):
        monkeypatch.setenv("SHVIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "shvit-cache"))


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests may talk to 127.0.0.1 (a served file), never to the internet."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(_LOOPBACK):
            raise OSError(f"test tried to reach the network ({host}); tests must stay offline")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tiny_model.TinyModel:
    """The tiny SHViT trained on generated shapes (trained once, cached in pytest's cache folder if enabled)."""
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("shvit-tiny-model")) if cache is not None else tmp_path_factory.mktemp("shvit-tiny-model")
    return tiny_model.build(root)
