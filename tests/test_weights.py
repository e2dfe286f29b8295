"""Loading released checkpoints: formats, layouts, variant inference, refusals, download and cache."""

from __future__ import annotations

import http.server
import os
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import randomize_bn
from safetensors.torch import save_file

import shvit
from shvit.errors import WeightsError
from shvit.weights import official_to_timm, timm_to_official

X = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def s1_state() -> dict[str, torch.Tensor]:
    return randomize_bn(shvit.create_model("s1"), seed=11).state_dict()


@pytest.fixture(scope="module")
def s1_logits(s1_state) -> torch.Tensor:
    model = shvit.create_model("s1")
    model.load_state_dict(s1_state)
    with torch.no_grad():
        return model(X)


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(X)


def test_timm_layout_round_trips_to_the_official_one(s1_state) -> None:
    timm = official_to_timm(s1_state)
    assert any(k.startswith("stages.1.downsample.2.conv1") for k in timm)
    assert any(k.startswith("stages.2.blocks.0.mixer") for k in timm)
    assert not any(k.startswith("blocks") for k in timm)
    assert list(timm_to_official(timm)) == list(s1_state)


@pytest.mark.parametrize("layout", ["official_pth", "bare_pth", "timm_pth", "timm_bin", "timm_safetensors", "linear_quirk"])
def test_every_released_layout_loads_into_the_same_model(tmp_path: Path, s1_state, s1_logits, layout: str) -> None:
    path = tmp_path / {"timm_bin": "w.bin", "timm_safetensors": "w.safetensors"}.get(layout, "w.pth")
    if layout == "official_pth":
        torch.save({"model": s1_state}, path)
    elif layout == "bare_pth":
        torch.save(s1_state, path)
    elif layout in ("timm_pth", "timm_bin"):
        torch.save(official_to_timm(s1_state), path)
    elif layout == "timm_safetensors":
        save_file({k: v.contiguous() for k, v in official_to_timm(s1_state).items()}, str(path))
    else:  # the official loader accepts 2-D weights for 1x1 convolutions
        quirky = {k: (v[:, :, 0, 0] if v.dim() == 4 and v.shape[2:] == (1, 1) else v) for k, v in s1_state.items()}
        torch.save({"model": quirky}, path)
    model = shvit.create_model("s1", weights=path)
    assert not model.training
    assert torch.equal(_logits(model), s1_logits)


def test_auto_variant_infers_the_architecture(tmp_path: Path, s1_state, s1_logits) -> None:
    path = tmp_path / "w.pth"
    torch.save({"model": s1_state}, path)
    model = shvit.create_model("auto", weights=path)
    assert model.config.embed_dim == (128, 224, 320) and model.config.partial_dim == (32, 48, 68)
    assert torch.equal(_logits(model), s1_logits)


def test_fine_tuned_head_loads_with_its_class_count(tmp_path: Path) -> None:
    state = shvit.create_model("s1", num_classes=10).state_dict()
    torch.save({"model": state}, tmp_path / "ft.pth")
    assert shvit.create_model("s1", weights=tmp_path / "ft.pth", num_classes=10).head.l.out_features == 10
    with pytest.raises(WeightsError, match=r"its head has 10 classes \(pass num_classes=10\)"):
        shvit.create_model("s1", weights=tmp_path / "ft.pth")


def test_checkpoint_of_another_variant_names_it(tmp_path: Path) -> None:
    torch.save({"model": shvit.create_model("s2").state_dict()}, tmp_path / "s2.pth")
    with pytest.raises(WeightsError) as info:
        shvit.create_model("s1", weights=tmp_path / "s2.pth")
    message = str(info.value)
    assert "does not fit SHViT-S1: it looks like SHViT-S2" in message
    assert "shape mismatches" in message and "\n" not in message


def test_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    torch.save({"model": {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}}, tmp_path / "resnet.pth")
    with pytest.raises(WeightsError, match=r"it looks like not an SHViT checkpoint; .* missing keys .* unexpected keys"):
        shvit.create_model("s3", weights=tmp_path / "resnet.pth")


def test_truncated_checkpoint(tmp_path: Path, s1_state) -> None:
    full = tmp_path / "full.pth"
    torch.save({"model": s1_state}, full)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(WeightsError, match="is truncated: download it again"):
        shvit.create_model("s1", weights=cut)


def test_truncated_safetensors(tmp_path: Path, s1_state) -> None:
    full = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in s1_state.items()}, str(full))
    full.write_bytes(full.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        shvit.create_model("s1", weights=full)


@pytest.mark.parametrize(
    "content", [os.urandom(4096), bytes(range(256)) * 16, b"", b"hello, I am a text file\n"], ids=["random", "all-bytes", "empty", "text"]
)
def test_random_bytes_empty_and_text_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=r"junk\.pth (is empty|is not a PyTorch or safetensors checkpoint)"):
        shvit.create_model("s1", weights=path)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["legacy", "zip"])
def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"model": {"patch_embed.0.c.weight": _Exploit(marker)}}
    if container == "legacy":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    with pytest.raises(WeightsError, match=r"contains Python objects other than tensors \(possibly code\); refusing to load it"):
        shvit.create_model("s1", weights=path)
    assert not marker.exists(), "loading executed code from the checkpoint"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist: pass the path"):
        shvit.create_model("s1", weights=tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="is a directory"):
        shvit.create_model("s1", weights=tmp_path)


def test_a_dict_without_tensors_is_refused(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "model": {"a": 1}}, tmp_path / "x.pth")
    with pytest.raises(WeightsError, match="holds no state dict of tensors"):
        shvit.create_model("s1", weights=tmp_path / "x.pth")


# ------------------------------------------------------------------ "imagenet": download and cache


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args) -> None:
                server.requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture()
def served(tmp_path: Path, s1_state) -> Iterator[_Server]:
    root = tmp_path / "www"
    root.mkdir()
    torch.save({"model": s1_state}, root / "shvit_s1.pth")
    server = _Server(root)
    yield server
    server.httpd.shutdown()


def test_imagenet_weights_download_once_and_reuse_the_cache(served: _Server, monkeypatch, tmp_path: Path, s1_logits) -> None:
    monkeypatch.setenv("SHVIT_WEIGHTS_URL", served.url + "/shvit_{variant}.pth")
    monkeypatch.setenv("SHVIT_CACHE_DIR", str(tmp_path / "cache"))
    first = shvit.create_model("s1", weights="imagenet")
    second = shvit.create_model("s1", weights="imagenet")
    assert torch.equal(_logits(first), s1_logits) and torch.equal(_logits(second), s1_logits)
    assert [r for r in served.requests if "shvit_s1" in r] == ["/shvit_s1.pth"] or len(served.requests) == 1
    cached = list((tmp_path / "cache" / "weights").iterdir())
    assert [p.name for p in cached] == ["shvit_s1.pth"], "no partial files may stay in the cache"


def test_imagenet_download_404_is_clear_and_leaves_no_partial_file(served: _Server, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHVIT_WEIGHTS_URL", served.url + "/missing_{variant}.pth")
    monkeypatch.setenv("SHVIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(WeightsError, match=r"^weights: cannot download .*HTTP 404: download it by hand and give its path as the weights"):
        shvit.create_model("s2", weights="imagenet")
    assert list((tmp_path / "cache" / "weights").iterdir()) == []


def test_imagenet_download_cut_short_is_refused_and_leaves_no_partial_file(monkeypatch, tmp_path: Path) -> None:
    class Truncating(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # promises 1 MB, sends 1 kB, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.write(b"x" * 1024)
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Truncating)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("SHVIT_WEIGHTS_URL", f"http://127.0.0.1:{httpd.server_address[1]}/shvit_{{variant}}.pth")
    monkeypatch.setenv("SHVIT_CACHE_DIR", str(tmp_path / "cache"))
    try:
        with pytest.raises(WeightsError, match=r"cut short \(1024 of 1048576 bytes\): try again or download it by hand"):
            shvit.create_model("s1", weights="imagenet")
    finally:
        httpd.shutdown()
    assert list((tmp_path / "cache" / "weights").iterdir()) == []


def test_imagenet_without_network_fails_fast_with_a_hint(monkeypatch, tmp_path: Path) -> None:
    """The real release URL, with the test's network guard standing in for a machine that is offline."""
    monkeypatch.delenv("SHVIT_WEIGHTS_URL", raising=False)
    monkeypatch.setattr("socket.getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    started = time.monotonic()
    with pytest.raises(WeightsError, match=r"cannot download https://github\.com/.*shvit_s3\.pth .*give its path as the weights"):
        shvit.create_model("s3", weights="imagenet")
    assert time.monotonic() - started < 15


def test_imagenet_against_a_silent_server_times_out_within_15_seconds(monkeypatch, tmp_path: Path) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections, never answers
    monkeypatch.setenv("SHVIT_WEIGHTS_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/shvit_{{variant}}.pth")
    started = time.monotonic()
    with pytest.raises(WeightsError, match="cannot download"):
        shvit.create_model("s1", weights="imagenet")
    assert time.monotonic() - started < 15
    listener.close()
