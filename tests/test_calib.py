"""Tests for calib: preprocessing exactness, awkward files, sampling, cache, generated data."""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import calib
from calib import folder as calib_folder

SIZE = 32


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real ~/.cache from tests."""
    monkeypatch.setenv(calib.CACHE_ENV_VAR, str(tmp_path_factory.mktemp("shvit-cache")))


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _smooth(width: int, height: int, seed: int = 0) -> Image.Image:
    """Photo-like content (gradients plus noise) so resampling differences would show."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 / width, ys * 255 / height, (xs + ys) * 127 / (width + height)], axis=-1)
    noisy = base + rng.normal(0, 20, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _save(img: Image.Image, path: Path, fmt: str | None = None, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **options)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose valid IHDR claims width x height; there is no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b""))
    return path


def _png_16bit(path: Path, colour_type: int, samples: tuple[int, ...], width: int = 8, height: int = 6) -> Path:
    """A 16-bit-per-sample PNG written by hand (Pillow cannot write RGB 16-bit)."""
    row = b"\x00" + struct.pack(">" + "H" * len(samples) * width, *(samples * width))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    body = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(row * height)) + _png_chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _truncated_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    full = path.with_suffix(".full")
    _noise(64, 48).save(full, "JPEG")
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def _text_as_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<html>not really a picture</html>\n")
    return path


def _collect() -> tuple[list[str], Callable[[str], None]]:
    messages: list[str] = []
    return messages, messages.append


def _skip_lines(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("skipped ")]


def _load(path: Path, **options: object) -> calib.ImageSet:
    options.setdefault("size", SIZE)
    options.setdefault("progress", False)
    options.setdefault("cache", False)
    return calib.load_folder(path, **options)


# ---------------------------------------------------------------- modes and formats


def _palette(transparent: bool) -> Image.Image:
    img = Image.new("P", (8, 6), 0)
    img.putpalette([10, 20, 30] + [200, 100, 50] * 255)
    if transparent:
        img.info["transparency"] = 0
    return img


def _la(alpha: int) -> Image.Image:
    return Image.merge("LA", [Image.new("L", (8, 6), 100), Image.new("L", (8, 6), alpha)])


MODE_FILES: dict[str, tuple[Callable[[Path], Path], tuple[int, int, int], int]] = {
    # name: (writer, expected RGB at (0, 0), tolerance)
    "L.png": (lambda p: _save(Image.new("L", (8, 6), 100), p), (100, 100, 100), 0),
    "LA_clear.png": (lambda p: _save(_la(0), p), (255, 255, 255), 0),
    "LA_opaque.png": (lambda p: _save(_la(255), p), (100, 100, 100), 0),
    "P.png": (lambda p: _save(_palette(False), p), (10, 20, 30), 0),
    "P_transparent.png": (lambda p: _save(_palette(True), p, transparency=0), (255, 255, 255), 0),
    "P.bmp": (lambda p: _save(_palette(False), p), (10, 20, 30), 0),
    "RGB.jpg": (lambda p: _save(Image.new("RGB", (8, 6), (200, 60, 20)), p, quality=95), (200, 60, 20), 6),
    "RGB.JPEG": (lambda p: _save(Image.new("RGB", (8, 6), (200, 60, 20)), p, "JPEG", quality=95), (200, 60, 20), 6),
    "RGB.png": (lambda p: _save(Image.new("RGB", (8, 6), (200, 60, 20)), p), (200, 60, 20), 0),
    "RGB.webp": (lambda p: _save(Image.new("RGB", (8, 6), (200, 60, 20)), p, lossless=True), (200, 60, 20), 0),
    "RGB.bmp": (lambda p: _save(Image.new("RGB", (8, 6), (200, 60, 20)), p), (200, 60, 20), 0),
    "RGB.tif": (lambda p: _save(Image.new("RGB", (8, 6), (200, 60, 20)), p), (200, 60, 20), 0),
    "RGB.TIFF": (lambda p: _save(Image.new("RGB", (8, 6), (200, 60, 20)), p, "TIFF"), (200, 60, 20), 0),
    "RGBA_clear.png": (lambda p: _save(Image.new("RGBA", (8, 6), (0, 0, 0, 0)), p), (255, 255, 255), 0),
    "RGBA_half.png": (lambda p: _save(Image.new("RGBA", (8, 6), (0, 0, 0, 128)), p), (127, 127, 127), 1),
    "RGBA.webp": (lambda p: _save(Image.new("RGBA", (8, 6), (0, 0, 0, 0)), p, lossless=True), (255, 255, 255), 0),
    "RGBA.tiff": (lambda p: _save(Image.new("RGBA", (8, 6), (10, 20, 30, 255)), p), (10, 20, 30), 0),
    "CMYK.jpg": (lambda p: _save(Image.new("CMYK", (8, 6), (255, 0, 0, 0)), p, quality=95), (0, 255, 255), 6),
    "CMYK.tif": (lambda p: _save(Image.new("CMYK", (8, 6), (0, 0, 0, 255)), p), (0, 0, 0), 0),
    "one_bit.png": (lambda p: _save(Image.new("1", (8, 6), 1), p), (255, 255, 255), 0),
    "one_bit.bmp": (lambda p: _save(Image.new("1", (8, 6), 0), p), (0, 0, 0), 0),
    "one_bit.tif": (lambda p: _save(Image.new("1", (8, 6), 1), p), (255, 255, 255), 0),
    # 16-bit grayscale: 0x1234 keeps its high byte 0x12 (clipping would give 255).
    "I16.png": (lambda p: _save(Image.fromarray(np.full((6, 8), 0x1234, np.uint16)), p), (0x12, 0x12, 0x12), 0),
    "I16.tif": (lambda p: _save(Image.fromarray(np.full((6, 8), 0xABCD, np.uint16)), p), (0xAB, 0xAB, 0xAB), 0),
    "I32.tif": (lambda p: _save(Image.fromarray(np.full((6, 8), 40000, np.int32)), p), (156, 156, 156), 0),
    "F.tif": (lambda p: _save(Image.fromarray(np.full((6, 8), 0.25, np.float32)), p), (64, 64, 64), 0),
    "RGB16.png": (lambda p: _png_16bit(p, 2, (0x1234, 0xABCD, 0xFFFF)), (0x12, 0xAB, 0xFF), 0),
    "RGBA16.png": (lambda p: _png_16bit(p, 6, (0x0000, 0x0000, 0x0000, 0x0000)), (255, 255, 255), 0),
    "LA16.png": (lambda p: _png_16bit(p, 4, (0x6400, 0xFFFF)), (100, 100, 100), 0),
    "YCbCr.jpg": (lambda p: _save(Image.new("YCbCr", (8, 6), (128, 128, 128)), p, quality=95), (128, 128, 128), 3),
}


@pytest.mark.parametrize("name", sorted(MODE_FILES))
def test_to_rgb_reads_every_mode_and_format(tmp_path: Path, name: str) -> None:
    writer, expected, tolerance = MODE_FILES[name]
    path = writer(tmp_path / name)
    with Image.open(path) as img:
        rgb = calib.to_rgb(img)
    assert rgb.mode == "RGB"
    assert rgb.size == (8, 6)
    got = np.asarray(rgb)[0, 0].astype(int)
    assert np.abs(got - np.array(expected)).max() <= tolerance, (name, got)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("YCbCr", (128, 128, 128), (128, 128, 128)),
        ("HSV", (0, 255, 255), (255, 0, 0)),
        ("I;16B", 0x1234, (0x12, 0x12, 0x12)),
        ("I;16", 0x00FF, (0, 0, 0)),
        ("I", 200, (200, 200, 200)),
        ("F", 1.0, (255, 255, 255)),
        ("F", 200.0, (200, 200, 200)),
        ("La", (100, 128), (227, 227, 227)),
        ("PA", (0, 0), (255, 255, 255)),
        ("RGBX", (1, 2, 3, 0), (1, 2, 3)),
    ],
)
def test_to_rgb_in_memory_modes(mode: str, value: object, expected: tuple[int, int, int]) -> None:
    rgb = calib.to_rgb(Image.new(mode, (4, 3), value))
    assert rgb.mode == "RGB" and rgb.size == (4, 3)
    assert tuple(np.asarray(rgb)[1, 2]) == expected


def test_to_rgb_lab_is_reachable() -> None:
    rgb = calib.to_rgb(Image.new("RGB", (4, 4), (200, 40, 40)).convert("LAB"))
    assert rgb.mode == "RGB"
    red, green, blue = np.asarray(rgb)[0, 0].astype(int)
    assert red > green + 60 and red > blue + 60


def test_sixteen_bit_grayscale_scales_instead_of_clipping() -> None:
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)
    rgb = np.asarray(calib.to_rgb(Image.fromarray(ramp)))
    assert rgb.shape == (16, 16, 3)
    np.testing.assert_array_equal(rgb[..., 0], np.arange(256, dtype=np.uint8).reshape(16, 16))


def test_every_mode_file_loads_through_the_folder_loader(tmp_path: Path) -> None:
    for name, (writer, _, _) in MODE_FILES.items():
        writer(tmp_path / "photos" / name)
    messages, warn = _collect()
    result = _load(tmp_path / "photos", warn=warn)
    assert messages == []
    assert result.pixels.shape == (len(MODE_FILES), SIZE, SIZE, 3)
    assert result.pixels.dtype == np.uint8
    assert result.labels is None and result.class_names is None and result.skipped == []


@pytest.mark.parametrize(("orientation", "red_on_top"), [(6, True), (8, False)])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, red_on_top: bool) -> None:
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40] = (255, 0, 0)
    pixels[:, 40:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(Image.fromarray(pixels), tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    with Image.open(path) as img:
        assert calib.to_rgb(img).size == (40, 80)
        out = calib.to_pixels(img, SIZE).astype(int)
    top, bottom = out[: SIZE // 4].mean(axis=(0, 1)), out[-SIZE // 4 :].mean(axis=(0, 1))
    upper, lower = (top, bottom) if red_on_top else (bottom, top)
    assert upper[0] > 200 and upper[2] < 50
    assert lower[2] > 200 and lower[0] < 50
    left, right = out[:, : SIZE // 4].mean(axis=(0, 1)), out[:, -SIZE // 4 :].mean(axis=(0, 1))
    np.testing.assert_allclose(left, right, atol=5)


# ---------------------------------------------------------------- exactness


def _reference_pixels(img: Image.Image, size: int) -> np.ndarray:
    """torchvision Resize(int(size / 0.875), BICUBIC) + CenterCrop(size), written out plainly."""
    img = img.convert("RGB")
    w, h = img.size
    target = int(size / 0.875)
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = target, int(target * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    resized = img.resize((new_w, new_h), Image.BICUBIC)
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    return np.asarray(resized.crop((left, top, left + size, top + size)))


@pytest.mark.parametrize("size", [224, 256])
@pytest.mark.parametrize("shape", [(640, 427), (375, 500), (333, 500), (500, 375), (300, 300), (97, 61), (20, 900)])
def test_to_pixels_matches_torchvision_eval_transform(size: int, shape: tuple[int, int]) -> None:
    img = _smooth(*shape, seed=shape[0])
    got = calib.to_pixels(img, size)
    assert got.shape == (size, size, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, _reference_pixels(img, size))


@pytest.mark.parametrize(
    ("width", "height", "short", "size", "resized", "origin"),
    [
        (640, 427, 256, 224, (383, 256), (80, 16)),  # 79.5 rounds half to even, as torchvision does
        (500, 375, 292, 256, (389, 292), (66, 18)),  # 66.5 -> 66
        (375, 500, 256, 224, (256, 341), (16, 58)),  # 58.5 -> 58
        (333, 500, 292, 256, (292, 438), (18, 91)),
    ],
)
def test_resize_and_crop_geometry(
    width: int, height: int, short: int, size: int, resized: tuple[int, int], origin: tuple[int, int]
) -> None:
    assert int(size / calib.CROP_PCT) == short
    assert calib.resized_size(width, height, short) == resized
    assert calib.crop_origin(*resized, size) == origin


def test_normalize_known_values() -> None:
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[0, 0] = (0, 0, 0)
    pixels[0, 1] = (255, 255, 255)
    pixels[0, 2] = (124, 116, 104)
    out = calib.normalize(pixels)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    mean, std = np.array(calib.IMAGENET_MEAN), np.array(calib.IMAGENET_STD)
    np.testing.assert_allclose(out[:, 0, 0], -mean / std, rtol=1e-6)
    np.testing.assert_allclose(out[:, 0, 1], (1 - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(out[:, 0, 0], [-2.1179039, -2.0357143, -1.8044444], rtol=1e-6)
    np.testing.assert_allclose(out[:, 0, 1], [2.2489083, 2.4285715, 2.64], rtol=1e-6)
    assert np.abs(out[:, 0, 2]).max() < 0.01
    batch = calib.normalize(np.stack([pixels, pixels[::-1]]))
    assert batch.shape == (2, 3, 2, 3)
    np.testing.assert_array_equal(batch[0], out)


def test_normalize_is_bit_exact_with_torch() -> None:
    torch = pytest.importorskip("torch")
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    tensor = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255)
    mean = torch.as_tensor(calib.IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.as_tensor(calib.IMAGENET_STD, dtype=torch.float32)[:, None, None]
    np.testing.assert_array_equal(calib.normalize(pixels), tensor.sub(mean).div(std).numpy())


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8)])
def test_normalize_rejects_wrong_input(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        calib.normalize(bad)


def test_to_pixels_refuses_absurd_aspect_ratio() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        calib.to_pixels(Image.new("L", (1, 3000)), 224)


# ---------------------------------------------------------------- folder loading and bad files


def _class_folder(root: Path, classes: dict[str, int], *, size: tuple[int, int] = (12, 10)) -> Path:
    for index, (name, n) in enumerate(sorted(classes.items())):
        for i in range(n):
            _save(_noise(*size, seed=index * 100 + i), root / name / f"{name}_{i:02d}.png")
    return root


def test_bad_files_are_skipped_with_one_warning_each(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    good = [_save(_noise(20, 14, seed=i), root / f"good_{i}.png") for i in range(3)]
    bad = {
        _text_as_jpeg(root / "page.jpg"): "not a readable",
        _truncated_jpeg(root / "cut.jpg"): "truncated",
        _png_header_only(root / "bomb.png", 100000, 100000): "too large",
        _png_header_only(root / "big.png", 9000, 9000): "9000x9000",
        _save(Image.new("L", (1, 60000)), root / "sliver.png"): "aspect ratio",
    }
    messages, warn = _collect()
    result = _load(root, warn=warn)
    assert sorted(result.paths) == sorted(good)
    assert {path for path, _ in result.skipped} == set(bad)
    assert len(messages) == len(bad) == len(_skip_lines(messages))
    for path, needle in bad.items():
        lines = [m for m in messages if str(path) in m]
        assert len(lines) == 1 and "\n" not in lines[0], lines
        assert needle in lines[0]


def test_default_warning_is_one_stderr_line_per_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "photos"
    _save(_noise(20, 14), root / "ok.png")
    text = _text_as_jpeg(root / "notes.jpg")
    cut = _truncated_jpeg(root / "cut.jpeg")
    _load(root)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert sum(line.startswith(f"warning: skipped {text}: ") for line in lines) == 1
    assert sum(line.startswith(f"warning: skipped {cut}: ") for line in lines) == 1


def test_pillow_decompression_bomb_warning_is_a_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "photos"
    small = _save(_noise(16, 16), root / "small.png")
    large = _save(_noise(24, 24), root / "large.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)
    messages, warn = _collect()
    result = _load(root, warn=warn)
    assert result.paths == [small]
    assert [p for p, _ in result.skipped] == [large] and "too large" in result.skipped[0][1]
    assert len(messages) == 1


def test_classes_nested_and_hidden_entries(tmp_path: Path) -> None:
    root = tmp_path / "val"
    _save(_noise(10, 10), root / "n01_cat" / "a.JPG", "JPEG")
    _save(_noise(10, 10, 1), root / "n01_cat" / "deeper" / "b.png")
    _save(_noise(10, 10, 2), root / "n02_dog" / "c.webp")
    _save(_noise(10, 10, 3), root / "n02_dog" / ".d.png")
    _save(_noise(10, 10, 4), root / "n02_dog" / ".thumbs" / "e.png")
    _save(_noise(10, 10, 5), root / ".git" / "f.png")
    (root / "n03_empty").mkdir()
    (root / "n04_docs").mkdir()
    (root / "n04_docs" / "readme.txt").write_text("hello")
    (root / "n02_dog" / "labels.csv").write_text("x")
    result = _load(root)
    assert result.class_names == ["n01_cat", "n02_dog"]
    assert len(result) == 3 and result.labels is not None
    assert sorted(p.relative_to(root).as_posix() for p in result.paths) == [
        "n01_cat/a.JPG",
        "n01_cat/deeper/b.png",
        "n02_dog/c.webp",
    ]
    for path, label in zip(result.paths, result.labels):
        assert path.relative_to(root).parts[0] == result.class_names[label]
    assert result.normalized().shape == (3, 3, SIZE, SIZE)


def test_flat_folder_with_subfolders_has_no_labels(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    _save(_noise(10, 10), root / "top.png")
    _save(_noise(10, 10, 1), root / "sub" / "inner.bmp")
    result = _load(root)
    assert result.labels is None and result.class_names is None
    assert [p.relative_to(root).as_posix() for p in result.paths] == ["sub/inner.bmp", "top.png"]


def test_count_none_returns_everything_in_path_order(tmp_path: Path) -> None:
    root = _class_folder(tmp_path / "val", {"b": 3, "a": 2})
    result = _load(root)
    assert [p.relative_to(root).as_posix() for p in result.paths] == [
        "a/a_00.png",
        "a/a_01.png",
        "b/b_00.png",
        "b/b_01.png",
        "b/b_02.png",
    ]
    assert result.labels == [0, 0, 1, 1, 1]


# ---------------------------------------------------------------- errors


def _error_line(excinfo: pytest.ExceptionInfo[calib.CalibError]) -> str:
    message = str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    assert message and "\n" not in message
    return message


def test_error_missing_path(tmp_path: Path) -> None:
    with pytest.raises(calib.CalibError) as excinfo:
        _load(tmp_path / "nowhere")
    assert "not found" in _error_line(excinfo)


def test_error_path_is_a_file(tmp_path: Path) -> None:
    path = _save(_noise(8, 8), tmp_path / "one.png")
    with pytest.raises(calib.CalibError) as excinfo:
        _load(path)
    assert "is a file" in _error_line(excinfo)


@pytest.mark.parametrize("extra", [None, "readme.txt"])
def test_error_no_images(tmp_path: Path, extra: str | None) -> None:
    root = tmp_path / "empty"
    (root / "sub").mkdir(parents=True)
    if extra:
        (root / extra).write_text("nothing to see")
    _save(_noise(8, 8), root / ".hidden" / "x.png")
    with pytest.raises(calib.CalibError) as excinfo:
        _load(root)
    assert "no image files" in _error_line(excinfo)


def test_error_all_files_bad(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    _text_as_jpeg(root / "a.jpg")
    _truncated_jpeg(root / "b.jpg")
    _png_header_only(root / "c.png", 100000, 100000)
    messages, warn = _collect()
    with pytest.raises(calib.CalibError) as excinfo:
        _load(root, warn=warn, count=2)
    assert "all 3 files were unreadable" in _error_line(excinfo)
    assert len(_skip_lines(messages)) == 3


@pytest.mark.parametrize("count", [0, -3])
def test_error_bad_count(tmp_path: Path, count: int) -> None:
    _save(_noise(8, 8), tmp_path / "a.png")
    with pytest.raises(calib.CalibError) as excinfo:
        _load(tmp_path, count=count)
    assert "count" in _error_line(excinfo)


def test_error_unreadable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "locked"
    _save(_noise(8, 8), root / "a.png")
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if Path(os.fspath(path)) == root:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(calib.CalibError) as excinfo:
        _load(root)
    assert "permission denied" in _error_line(excinfo)


def test_unreadable_subfolder_is_warned_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _class_folder(tmp_path / "val", {"a": 2, "b": 2})
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if Path(os.fspath(path)) == root / "b":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    messages, warn = _collect()
    result = _load(root, warn=warn)
    assert result.class_names == ["a"] and len(result) == 2
    assert len(messages) == 1 and str(root / "b") in messages[0]


# ---------------------------------------------------------------- sampling


def test_sampling_is_deterministic_and_spread_across_classes(tmp_path: Path) -> None:
    root = _class_folder(tmp_path / "val", {"a": 6, "b": 6, "c": 6, "d": 6})
    first = _load(root, count=8, seed=0)
    again = _load(root, count=8, seed=0, workers=1)
    other = _load(root, count=8, seed=1)
    assert first.paths == again.paths
    np.testing.assert_array_equal(first.pixels, again.pixels)
    assert first.paths != other.paths
    assert first.labels is not None and other.labels is not None
    assert Counter(first.labels) == {0: 2, 1: 2, 2: 2, 3: 2}
    assert Counter(other.labels) == {0: 2, 1: 2, 2: 2, 3: 2}
    uneven = _load(root, count=6, seed=3)
    assert uneven.labels is not None and sorted(Counter(uneven.labels).values()) == [1, 1, 2, 2]
    flat = _load(root / "a", count=3, seed=0)
    assert len(flat) == 3 and flat.paths == _load(root / "a", count=3, seed=0).paths
    assert flat.paths != _load(root / "a", count=3, seed=5).paths


def test_bad_files_are_replaced_to_meet_count(tmp_path: Path) -> None:
    root = _class_folder(tmp_path / "val", {"a": 5, "b": 5, "c": 2})
    bad = [_text_as_jpeg(root / "c" / f"junk_{i}.jpg") for i in range(4)]
    messages, warn = _collect()
    result = _load(root, count=9, seed=0, warn=warn)
    assert len(result) == 9
    assert result.labels is not None
    per_class = Counter(result.labels)
    assert per_class[2] == 2 and sorted([per_class[0], per_class[1]]) == [3, 4]
    assert sorted(p for p, _ in result.skipped) == sorted(bad)
    assert len(_skip_lines(messages)) == 4


def test_too_few_images_returns_what_exists_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "few"
    for i in range(3):
        _save(_noise(8, 8, i), root / f"{i}.png")
    _text_as_jpeg(root / "junk.jpg")
    messages, warn = _collect()
    result = _load(root, count=10, warn=warn)
    assert len(result) == 3
    assert len(_skip_lines(messages)) == 1
    assert any(m.startswith("only 3 usable images") for m in messages)


# ---------------------------------------------------------------- cache


def test_cache_hit_modify_and_corruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _class_folder(tmp_path / "val", {"a": 3, "b": 3})
    _text_as_jpeg(root / "a" / "junk.jpg")
    cache_dir = tmp_path / "cache"
    messages, warn = _collect()
    first = _load(root, count=6, cache=True, cache_dir=cache_dir, warn=warn)
    entries = list(cache_dir.glob("*.npz"))
    assert len(entries) == 1 and not [p for p in cache_dir.iterdir() if p.suffix != ".npz"]

    real_decode = calib_folder._decode_file
    calls: list[Path] = []

    def counting(path: Path, size: int, max_pixels: int) -> np.ndarray:
        calls.append(path)
        return real_decode(path, size, max_pixels)

    monkeypatch.setattr(calib_folder, "_decode_file", counting)
    cached_messages, cached_warn = _collect()
    second = _load(root, count=6, cache=True, cache_dir=cache_dir, warn=cached_warn)
    assert calls == []
    np.testing.assert_array_equal(first.pixels, second.pixels)
    assert (second.paths, second.labels, second.class_names) == (first.paths, first.labels, first.class_names)
    assert second.skipped == first.skipped and cached_messages == messages

    target = root / "b" / "b_00.png"
    stat = target.stat()
    _save(_noise(12, 10, seed=999), target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    third = _load(root, count=6, cache=True, cache_dir=cache_dir, warn=cached_warn)
    assert calls, "a modified file must invalidate the cache"
    assert len(list(cache_dir.glob("*.npz"))) == 2
    assert target in third.paths
    with Image.open(target) as img:
        np.testing.assert_array_equal(third.pixels[third.paths.index(target)], calib.to_pixels(img, SIZE))

    calls.clear()
    newest = max(cache_dir.glob("*.npz"), key=lambda p: p.stat().st_mtime_ns)
    newest.write_bytes(newest.read_bytes()[:100])
    fourth = _load(root, count=6, cache=True, cache_dir=cache_dir, warn=cached_warn)
    assert calls, "a corrupt cache entry must be ignored"
    np.testing.assert_array_equal(fourth.pixels, third.pixels)
    with np.load(newest) as data:
        assert data["pixels"].shape == (6, SIZE, SIZE, 3)

    calls.clear()
    newest.write_bytes(b"not a zip file at all")
    _load(root, count=6, cache=True, cache_dir=cache_dir, warn=cached_warn)
    assert calls
    assert not [p for p in cache_dir.iterdir() if p.suffix != ".npz"]


def test_cache_key_depends_on_options(tmp_path: Path) -> None:
    root = _class_folder(tmp_path / "val", {"a": 3})
    cache_dir = tmp_path / "cache"
    for options in ({"count": 2, "seed": 0}, {"count": 2, "seed": 1}, {"count": 3, "seed": 0}, {"size": 16}):
        _load(root, cache=True, cache_dir=cache_dir, **options)
    assert len(list(cache_dir.glob("*.npz"))) == 4


def test_cache_default_location_and_opt_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _class_folder(tmp_path / "val", {"a": 2})
    monkeypatch.setenv(calib.CACHE_ENV_VAR, str(tmp_path / "env"))
    assert calib.default_cache_dir() == tmp_path / "env" / "calib"
    _load(root, cache=False)
    assert not (tmp_path / "env").exists()
    _load(root, cache=True)
    assert len(list((tmp_path / "env" / "calib").glob("*.npz"))) == 1
    monkeypatch.delenv(calib.CACHE_ENV_VAR)
    assert calib.default_cache_dir() == Path.home() / ".cache" / "shvit-mobile" / "calib"


# ---------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_is_drawn_on_a_terminal_only_and_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _class_folder(tmp_path / "val", {"a": 2})
    _load(root, progress=True)  # stderr captured by pytest: not a terminal, so no bar in logs
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _load(root, progress=False)
    assert terminal.getvalue() == ""
    _load(root, progress=True)
    assert "decoding val" in terminal.getvalue() and "/2 " in terminal.getvalue()
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- generated images


def test_synthetic_images_are_deterministic_and_varied() -> None:
    images = calib.synthetic_images(6, 48, seed=0)
    assert images.shape == (6, 48, 48, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, calib.synthetic_images(6, 48, seed=0))
    np.testing.assert_array_equal(images[:3], calib.synthetic_images(3, 48, seed=0))
    assert not np.array_equal(images, calib.synthetic_images(6, 48, seed=1))
    for i in range(len(images)):
        assert images[i].astype(float).std() > 10
        for j in range(i):
            assert np.abs(images[i].astype(int) - images[j]).mean() > 10
    assert calib.synthetic_images(1, 224).shape == (1, 224, 224, 3)


def test_make_class_dataset_shapes_and_balance() -> None:
    pixels, labels, names = calib.make_class_dataset(5, 64, seed=0)
    assert pixels.shape == (40, 64, 64, 3) and pixels.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.shape == (40,)
    assert np.bincount(labels).tolist() == [5] * 8
    assert len(names) == 8 == len(set(names))
    assert np.bincount(labels[:8]).tolist() == [1] * 8
    again, again_labels, _ = calib.make_class_dataset(5, 64, seed=0)
    np.testing.assert_array_equal(pixels, again)
    np.testing.assert_array_equal(labels, again_labels)
    assert not np.array_equal(pixels, calib.make_class_dataset(5, 64, seed=1)[0])
    means = np.stack([pixels[labels == c].std(axis=(1, 2, 3)).mean() for c in range(8)])
    assert (means > 5).all()
    small, small_labels, small_names = calib.make_class_dataset(2, 32, num_classes=3)
    assert small.shape == (6, 32, 32, 3) and small_names == names[:3] and set(small_labels.tolist()) == {0, 1, 2}
    with pytest.raises(ValueError):
        calib.make_class_dataset(2, 32, num_classes=99)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "bmp", "tiff"])
def test_write_dataset_round_trips_through_the_loader(tmp_path: Path, fmt: str) -> None:
    pixels, labels, names = calib.make_class_dataset(2, 32, seed=0, num_classes=4)
    written = calib.write_dataset(tmp_path / "set", pixels, labels, names, fmt=fmt)
    assert len(written) == 8 and all(p.exists() for p in written)
    result = _load(tmp_path / "set", size=32)
    assert result.class_names == sorted(names) and len(result) == 8 and result.skipped == []
    assert result.labels is not None
    for path, label in zip(result.paths, result.labels):
        assert path.parent.name == result.class_names[label]
    if fmt in ("png", "bmp", "tiff"):
        with Image.open(written[0]) as img:
            np.testing.assert_array_equal(np.asarray(img.convert("RGB")), pixels[0])


def test_write_dataset_rejects_bad_input(tmp_path: Path) -> None:
    pixels, labels, names = calib.make_class_dataset(1, 16, num_classes=2)
    with pytest.raises(ValueError):
        calib.write_dataset(tmp_path, pixels, labels, names, fmt="gif")
    with pytest.raises(ValueError):
        calib.write_dataset(tmp_path, pixels, labels[:1], names)
    with pytest.raises(ValueError):
        calib.write_dataset(tmp_path, pixels, labels, [".hidden", "b"])
    with pytest.raises(ValueError):
        calib.write_dataset(tmp_path, pixels, labels + 5, names)


# ---------------------------------------------------------------- odd folders and metadata


def test_malformed_exif_does_not_cost_the_image(tmp_path: Path) -> None:
    path = _save(_noise(20, 10), tmp_path / "photos" / "odd.jpg", exif=b"Exif\x00\x00MM\x00*garbage")
    messages, warn = _collect()
    result = _load(tmp_path / "photos", warn=warn)
    assert result.paths == [path] and messages == []


def test_symlink_loops_are_not_followed_forever(tmp_path: Path) -> None:
    root = _class_folder(tmp_path / "val", {"a": 2, "b": 1})
    try:
        (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    except OSError:
        pytest.skip("symlinks unsupported here")
    result = _load(root)
    assert len(result) == 3 and result.class_names == ["a", "b"]


def test_numpy_integer_options_are_accepted(tmp_path: Path) -> None:
    root = _class_folder(tmp_path / "val", {"a": 3})
    result = _load(root, size=np.int64(SIZE), count=np.int64(2), seed=np.int64(1), cache=True)
    assert result.pixels.shape == (2, SIZE, SIZE, 3)
