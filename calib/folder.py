"""Folders of real photos -> preprocessed pixels, robust to whatever they hold.

Calibration and evaluation folders come from users: ImageNet-val copies, phone
photo dumps, scraped sets with HTML saved as .jpg, truncated downloads, 16-bit
scans. Bad files are skipped with one warning each and replaced so the
requested count is still met; only problems that leave nothing usable raise.
"""

from __future__ import annotations

import os
import random
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .cache import FileStamp, cache_key, default_cache_dir, read_entry, write_entry
from .errors import CalibError
from .preprocess import normalize, to_pixels

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
UNDECODABLE_PHOTOS: dict[str, str] = {
    ".heic": "HEIC",
    ".heif": "HEIF",
    ".dng": "RAW",
    ".cr2": "RAW",
    ".cr3": "RAW",
    ".nef": "RAW",
    ".arw": "RAW",
    ".raf": "RAW",
}
"""Photo formats phones and cameras write that Pillow cannot decode: listed as skipped, never silently ignored."""
CONVERT_HINT = "convert it to JPEG (on a Mac: sips -s format jpeg IN --out OUT.jpg)"
MAX_PIXELS = 1 << 26
"""Largest image decoded (67 MP: 64 MP phone photos pass, decompression bombs do not)."""

_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")  # JPEG covers MPO (multi-picture) files too
_KINDS = "JPEG/PNG/WebP/BMP/TIFF"

Warn = Callable[[str], None]


@dataclass
class ImageSet:
    """Preprocessed images plus where they came from and what was left out."""

    pixels: np.ndarray
    paths: list[Path]
    labels: list[int] | None = None
    class_names: list[str] | None = None
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def normalized(self) -> np.ndarray:
        """(N, 3, size, size) float32, the input PyTorch models take."""
        return normalize(self.pixels)


@dataclass(frozen=True)
class _File:
    path: Path
    rel: str
    size: int
    mtime_ns: int


class _TooLarge(Exception):
    pass


def _default_warn(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return f"not a readable {_KINDS} image"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"too large ({_one_line(str(exc))})"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, MemoryError):
        return "out of memory while decoding"
    return _one_line(str(exc)) or type(exc).__name__


def _folder_error(folder: Path, exc: OSError) -> CalibError:
    if isinstance(exc, PermissionError):
        return CalibError(f"cannot read folder {folder}: permission denied; fix its permissions (chmod u+rx) or pass another folder")
    return CalibError(f"cannot read folder {folder}: {_one_line(exc.strerror or str(exc))}; pass a readable folder")


def _list_dir(folder: Path, warn: Warn) -> tuple[list[_File], list[Path]]:
    """Image files and sub-folders directly in `folder`, hidden entries ignored; undecodable photos reported."""
    files: list[_File] = []
    subdirs: list[Path] = []
    undecodable: list[tuple[Path, str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                suffix = os.path.splitext(entry.name)[1].lower()
                if entry.is_dir():
                    subdirs.append(Path(entry.path))
                elif entry.is_file() and suffix in IMAGE_EXTENSIONS:
                    stat = entry.stat()
                    files.append(_File(Path(entry.path), "", stat.st_size, stat.st_mtime_ns))
                elif suffix in UNDECODABLE_PHOTOS and entry.is_file():
                    undecodable.append((Path(entry.path), UNDECODABLE_PHOTOS[suffix]))
            except OSError:
                continue
    for path, kind in sorted(undecodable):
        warn(f"skipped {path}: {kind} photos cannot be decoded here; {CONVERT_HINT}")
    return files, sorted(subdirs)


def _walk(folder: Path, warn: Warn, seen: set[tuple[int, int]]) -> list[_File]:
    """All image files under `folder`, following symlinked folders but never in a loop."""
    try:
        stat = folder.stat()
        if (stat.st_dev, stat.st_ino) in seen:
            return []
        seen.add((stat.st_dev, stat.st_ino))
        files, subdirs = _list_dir(folder, warn)
    except OSError as exc:
        warn(f"skipped folder {folder}: {_reason(exc)}")
        return []
    for sub in subdirs:
        files.extend(_walk(sub, warn, seen))
    return files


def _discover(root: Path, warn: Warn) -> tuple[list[list[_File]], list[str] | None]:
    """Files grouped by class (one group when flat) and the class names (None when flat)."""
    try:
        root_stat = root.stat()
        top_files, subdirs = _list_dir(root, warn)
    except OSError as exc:
        raise _folder_error(root, exc) from None
    seen = {(root_stat.st_dev, root_stat.st_ino)}

    def relative(files: list[_File]) -> list[_File]:
        named = [_File(f.path, f.path.relative_to(root).as_posix(), f.size, f.mtime_ns) for f in files]
        return sorted(named, key=lambda f: f.rel)

    if top_files:
        everything = list(top_files)
        for sub in subdirs:
            everything.extend(_walk(sub, warn, seen))
        return [relative(everything)], None
    groups: list[list[_File]] = []
    names: list[str] = []
    for sub in subdirs:
        files = _walk(sub, warn, seen)
        if files:
            groups.append(relative(files))
            names.append(sub.name)
    return groups, names


def _decode_file(path: Path, size: int, max_pixels: int) -> np.ndarray:
    """Fully decode one file (so truncation is detected) into model pixels."""
    with Image.open(path, formats=_FORMATS) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise _TooLarge(f"too large: {width}x{height} pixels, over the {max_pixels}-pixel limit")
        return to_pixels(img, size)


def _quotas(caps: list[int], order: list[int], count: int) -> list[int]:
    """Images per class when taking one per class in `order`, round after round, up to `count`."""
    quota = [0] * len(caps)
    remaining = count
    active = [c for c in order if caps[c] > 0]
    while remaining > 0 and active:
        rounds = min(remaining // len(active), min(caps[c] - quota[c] for c in active))
        if rounds > 0:
            for c in active:
                quota[c] += rounds
            remaining -= rounds * len(active)
        else:
            for c in active[:remaining]:
                quota[c] += 1
            remaining = 0
        active = [c for c in active if quota[c] < caps[c]]
    return quota


class _Decoder:
    """Decodes batches of files in parallel, reporting failures in a fixed order."""

    def __init__(self, *, size: int, max_pixels: int, workers: int, bar: tqdm, warn: Warn) -> None:
        self.size = size
        self.max_pixels = max_pixels
        self.bar = bar
        self.warn = warn
        self.skipped: list[tuple[Path, str]] = []
        self._pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _attempt(self, path: Path) -> np.ndarray | str:
        try:
            return _decode_file(path, self.size, self.max_pixels)
        except Exception as exc:
            return _reason(exc)

    def decode(self, files: list[_File]) -> Iterator[np.ndarray | None]:
        """Pixels per file, or None (after one warning) for files that cannot be used."""
        paths = [f.path for f in files]
        done = self.bar.n
        if self.bar.total is not None and done + len(paths) > self.bar.total:
            self.bar.total = done + len(paths)
            self.bar.refresh()
        results = self._pool.map(self._attempt, paths) if self._pool is not None else map(self._attempt, paths)
        for path, result in zip(paths, results):
            self.bar.update(1)
            if isinstance(result, str):
                self.skipped.append((path, result))
                self.warn(f"skipped {path}: {result}")
                yield None
            else:
                yield result


def _sample(
    groups: list[list[_File]], *, count: int | None, seed: int, decoder: _Decoder
) -> tuple[list[_File], list[int], list[np.ndarray]]:
    """Pick images round-robin across classes, replacing bad files from the same class.

    Files are decoded lazily, in parallel batches, assuming undecoded files are
    good; the result depends only on the file contents and the seed.
    """
    rng = random.Random(seed)
    queues = [list(group) for group in groups]
    order = list(range(len(groups)))
    if count is not None:
        for queue in queues:
            rng.shuffle(queue)
        rng.shuffle(order)
    target = count if count is not None else sum(len(q) for q in queues)
    used = [0] * len(queues)
    good: list[list[tuple[_File, np.ndarray]]] = [[] for _ in queues]
    while True:
        caps = [len(good[c]) + len(queues[c]) - used[c] for c in range(len(queues))]
        quota = _quotas(caps, order, target)
        jobs: list[tuple[int, _File]] = []
        for c in order:
            batch = queues[c][used[c] : used[c] + max(quota[c] - len(good[c]), 0)]
            jobs.extend((c, f) for f in batch)
            used[c] += len(batch)
        if not jobs:
            break
        for (c, file), pixels in zip(jobs, decoder.decode([f for _, f in jobs])):
            if pixels is not None:
                good[c].append((file, pixels))
    picked: list[tuple[_File, int, np.ndarray]] = []
    for r in range(max((len(g) for g in good), default=0)):
        for c in order:
            if r < len(good[c]):
                file, pixels = good[c][r]
                picked.append((file, c, pixels))
    if count is None:
        rank = {f.rel: i for i, f in enumerate(f for group in groups for f in group)}
        picked.sort(key=lambda item: rank[item[0].rel])
    return [p[0] for p in picked], [p[1] for p in picked], [p[2] for p in picked]


def _stack(arrays: list[np.ndarray], size: int) -> np.ndarray:
    """Copy into one array while dropping the per-image ones, to keep peak memory ~1x."""
    out = np.empty((len(arrays), size, size, 3), dtype=np.uint8)
    for i in range(len(arrays)):
        out[i] = arrays[i]
        arrays[i] = out[i]
    return out


def _to_entry(result: ImageSet, root: Path) -> dict[str, np.ndarray]:
    return {
        "pixels": result.pixels,
        "paths": np.array([p.relative_to(root).as_posix() for p in result.paths], dtype=str),
        "has_labels": np.array(result.labels is not None),
        "labels": np.array(result.labels or [], dtype=np.int64),
        "class_names": np.array(result.class_names or [], dtype=str),
        "skipped_paths": np.array([p.relative_to(root).as_posix() for p, _ in result.skipped], dtype=str),
        "skipped_reasons": np.array([reason for _, reason in result.skipped], dtype=str),
    }


def _from_entry(entry: dict[str, np.ndarray], root: Path, size: int) -> ImageSet | None:
    try:
        pixels = entry["pixels"]
        paths = [root / p for p in entry["paths"].tolist()]
        has_labels = bool(entry["has_labels"])
        labels = [int(x) for x in entry["labels"].tolist()] if has_labels else None
        class_names = [str(x) for x in entry["class_names"].tolist()] if has_labels else None
        skipped = list(zip((root / p for p in entry["skipped_paths"].tolist()), entry["skipped_reasons"].tolist()))
    except (KeyError, TypeError, ValueError):
        return None
    if pixels.dtype != np.uint8 or pixels.shape != (len(paths), size, size, 3):
        return None
    if labels is not None and (len(labels) != len(paths) or class_names is None):
        return None
    if labels is not None and class_names is not None and any(not 0 <= x < len(class_names) for x in labels):
        return None
    return ImageSet(pixels, paths, labels, class_names, [(p, str(r)) for p, r in skipped])


def _check_root(path: Path | str) -> Path:
    root = Path(path).expanduser()
    if not root.exists():
        raise CalibError(f"image folder not found: {root}; pass an existing folder of {_KINDS} images")
    if not root.is_dir():
        raise CalibError(f"{root} is a file, not a folder; pass the folder that holds the images")
    return root


def scan_folder(path: Path | str, *, warn: Warn | None = None) -> int:
    """How many image files a folder holds, without decoding any: the cheap check a command
    runs before slow work, raising the same CalibError as :func:`load_folder` would."""
    root = _check_root(path)
    groups, _ = _discover(root, warn if warn is not None else _default_warn)
    total = sum(len(g) for g in groups)
    if total == 0:
        raise _no_images(root)
    return total


def _no_images(root: Path) -> CalibError:
    return CalibError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {root} or its sub-folders; pass a folder of photos")


def load_folder(
    path: Path | str,
    *,
    size: int,
    count: int | None = None,
    seed: int = 0,
    cache_dir: Path | str | None = None,
    cache: bool = True,
    progress: bool = True,
    warn: Warn | None = None,
    workers: int | None = None,
    max_pixels: int = MAX_PIXELS,
    requested: bool = True,
) -> ImageSet:
    """Load, sample and preprocess a flat or class-per-sub-folder image folder.

    `count` images are drawn with `seed`, round-robin across classes; unusable
    files are skipped with one `warn` call each ("skipped PATH: REASON"; the
    default prints "warning: ..." to stderr) and replaced. Results are cached
    (see calib.cache) unless `cache` is False. A folder with fewer usable images than `count` is
    reported, unless `requested` is False (`count` was a default cap, not the user's number).
    """
    if int(size) != size or size < 1:
        raise CalibError(f"size must be a positive number of pixels (got {size}); use 224 for S1-S3, 256 for S4")
    if count is not None and (int(count) != count or count < 1):
        raise CalibError(f"count must be a whole number of at least 1 (got {count}); pass None to use every image")
    size, seed = int(size), int(seed)
    count = int(count) if count is not None else None
    report = warn if warn is not None else _default_warn
    root = _check_root(path)
    groups, class_names = _discover(root, report)
    total = sum(len(g) for g in groups)
    if total == 0:
        raise _no_images(root)

    stamps: list[FileStamp] = [(f.rel, f.size, f.mtime_ns) for g in groups for f in g]
    entry_path: Path | None = None
    result: ImageSet | None = None
    if cache:
        key = cache_key(stamps, size=size, count=count, seed=seed, max_pixels=max_pixels, classes=class_names)
        entry_path = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / f"{key}.npz"
        entry = read_entry(entry_path)
        result = _from_entry(entry, root, size) if entry is not None else None
        if result is not None:
            for skipped_path, reason in result.skipped:
                report(f"skipped {skipped_path}: {reason}")

    if result is None:
        result = _decode_all(
            root,
            groups,
            class_names,
            size=size,
            count=count,
            seed=seed,
            progress=progress,
            warn=report,
            workers=workers,
            max_pixels=max_pixels,
        )
        if entry_path is not None:
            try:
                write_entry(entry_path, _to_entry(result, root))
            except OSError as exc:
                report(f"could not write the preprocessing cache {entry_path}: {_reason(exc)}")

    if count is not None and len(result) < count and requested:
        report(f"only {len(result)} usable image{'s' if len(result) != 1 else ''} in {root}, fewer than the {count} requested")
    return result


def _decode_all(
    root: Path,
    groups: list[list[_File]],
    class_names: list[str] | None,
    *,
    size: int,
    count: int | None,
    seed: int,
    progress: bool,
    warn: Warn,
    workers: int | None,
    max_pixels: int,
) -> ImageSet:
    total = sum(len(g) for g in groups)
    planned = min(count, total) if count is not None else total
    threads = workers if workers is not None else min(8, os.cpu_count() or 1)
    bar = tqdm(
        total=planned,
        desc=f"decoding {root.name or root}",
        unit="img",
        file=sys.stderr,
        disable=None if progress else True,  # drawn on a terminal only, not into logs
        leave=False,
        dynamic_ncols=True,
    )
    decoder = _Decoder(size=size, max_pixels=max_pixels, workers=max(1, threads), bar=bar, warn=warn)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            files, labels, arrays = _sample(groups, count=count, seed=seed, decoder=decoder)
    finally:
        decoder.close()
        bar.close()
    if not arrays:
        raise CalibError(
            f"no usable images in {root}: all {total} files were unreadable (see the warnings above); "
            f"check that they are valid {_KINDS} images"
        )
    return ImageSet(
        pixels=_stack(arrays, size),
        paths=[f.path for f in files],
        labels=labels if class_names is not None else None,
        class_names=list(class_names) if class_names is not None else None,
        skipped=decoder.skipped,
    )
