"""Reading released checkpoints: file formats, official vs timm layout, variant inference, download.

Loading never executes code from a file: pickles go through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import re
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from shvit.config import RELEASE_URL, VARIANTS, SHViTConfig
from shvit.errors import WeightsError

WEIGHTS_URL_ENV = "SHVIT_WEIGHTS_URL"
CACHE_ENV = "SHVIT_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 8.0
DNS_TIMEOUT_S = 5.0

_SAFETENSORS_SUFFIXES = (".safetensors",)
_logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "shvit-mobile"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------- files


def read_state_dict(path: str | os.PathLike[str]) -> CheckpointState:
    """SHViT tensors of a checkpoint file: official ``{'model': sd}``, a bare state dict, safetensors, or a
    training checkpoint whose keys sit under a wrapper prefix (see :func:`_unwrap`); the prefix is ``.prefix``."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist: pass the path of a downloaded .pth/.bin/.safetensors file")
    if path.is_dir():
        raise WeightsError(f"weights path {path} is a directory: pass the checkpoint file inside it")
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is empty: download it again")
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix in _SAFETENSORS_SUFFIXES or _looks_like_safetensors(path, head):
        obj: object = _read_safetensors(path)
    else:
        obj = _read_torch(path, head)
    state_dict = _unwrap(obj, path)
    check_finite(state_dict, source=f"checkpoint {path}")
    return state_dict


def _looks_like_safetensors(path: Path, head: bytes) -> bool:
    if len(head) < 8 or head[:2] == b"PK":
        return False
    header_len = int.from_bytes(head, "little")
    if not 2 <= header_len <= path.stat().st_size - 8:
        return False
    with open(path, "rb") as f:
        f.seek(8)
        return f.read(1) == b"{"


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, ValueError, OSError) as exc:
        raise WeightsError(f"weights file {path} is not a readable safetensors file ({_first_line(exc)}): download it again") from None


def _read_torch(path: Path, head: bytes) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many unrelated types for foreign bytes
        if head[:2] == b"PK" and not zipfile.is_zipfile(path):
            raise WeightsError(f"weights file {path} is truncated: download it again") from None
        text = str(exc)
        if re.search(r"unsupported global", text, re.IGNORECASE):
            raise WeightsError(
                f"weights file {path} contains Python objects other than tensors (possibly code); "
                "refusing to load it: use the released .pth or a .safetensors file"
            ) from None
        raise WeightsError(
            f"weights file {path} is not a PyTorch or safetensors checkpoint "
            f"({'unreadable pickle data' if 'Weights only load failed' in text else _first_line(exc)}): "
            "pass a released .pth/.bin/.safetensors file"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


_NESTING_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema", "module", "net", "network", "ema", "params")
"""Keys training stacks nest a state dict under (official/DeiT, Lightning, timm EMA, MMCV, ...), in preference order."""
_SHVIT_KEY = re.compile(
    r"(?:patch_embed\.\d+|blocks[123]\.\d+|stages\.\d+\.(?:blocks|downsample)\.\d+)\.(?:.+\.)?(?:c\.weight|bn\.\w+)"
    r"|head(?:_dist)?\.(?:bn\.\w+|l\.(?:weight|bias))"
)
"""A key of SHViT's own naming (official or timm layout), relative to the model: its Conv2d_BN/BN_Linear leaves."""
_MIN_SHVIT_KEYS = 4
"""Keys a prefix needs to count as holding an SHViT (one stray ``head.l.weight`` is not a model)."""
_PLAIN_PREFIXES = frozenset(f"{outer}{inner}" for outer in ("", "model.", "state_dict.", "model_ema.") for inner in ("", "module."))
"""Prefixes of the released and DeiT-style checkpoints (what the loader always read): not worth naming in an error."""
_MAX_DEPTH = 8
"""Nesting levels searched for tensors; checkpoints nest two or three, deeper is not a state dict."""
_EMA = re.compile(r"(?:^|[._])ema(?:[._]|$)", re.IGNORECASE)


class CheckpointState(dict[str, torch.Tensor]):
    """A checkpoint's SHViT tensors, with the wrapper ``prefix`` they were found under ('' at the top).

    The prefix travels with the tensors so that a checkpoint that still does not fit can say where
    its keys came from.
    """

    prefix: str = ""

    def __init__(self, tensors: Mapping[str, torch.Tensor], *, prefix: str = "") -> None:
        super().__init__(tensors)
        self.prefix = prefix


def _unwrap(obj: object, path: Path) -> CheckpointState:
    """The SHViT state dict inside a checkpoint, whatever wrapped it.

    Training stacks nest the weights (``{'model': …}``, Lightning's ``{'state_dict': …}``) and
    prefix their keys (DDP ``module.``, ``torch.compile``'s ``_orig_mod.``, Lightning's attribute
    name, a Hugging Face wrapper's); the checkpoint may also hold an optimizer, an EMA copy or loss
    buffers. Nested dicts are flattened to dotted keys, SHViT's own keys are located under whatever
    single prefix they share, and only the keys under that prefix are kept.
    """
    tensors = _flatten(obj)
    if not tensors:
        raise WeightsError(f"weights file {path} holds no state dict of tensors: pass a released SHViT checkpoint")
    prefixes = _shvit_prefixes(tensors)
    if not prefixes:
        return CheckpointState(_fallback(obj, tensors))
    ranked = sorted(prefixes, key=lambda p: (bool(_EMA.search(p)), -prefixes[p], len(p)))
    prefix = ranked[0]
    if len(ranked) > 1:
        others = ", ".join(repr(p) for p in ranked[1:])
        _logger.info(
            "%s holds SHViT weights under %r and %s; using %r%s",
            path,
            prefix,
            others,
            prefix,
            " (the EMA copy is ignored; to use it, save it on its own)" if any(_EMA.search(p) for p in ranked[1:]) else "",
        )
    elif prefix:
        _logger.debug("%s: SHViT weights found under %r", path, prefix)
    deeper = [p for p in prefixes if p != prefix and p.startswith(prefix)]
    chosen = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix) and not k.startswith(tuple(deeper))}
    return CheckpointState(chosen, prefix=prefix)


def _flatten(obj: object, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
    """Every tensor in nested mappings, keyed by its dotted path (lists, numbers and strings are skipped)."""
    if isinstance(obj, torch.Tensor):
        return {prefix[:-1]: obj} if prefix else {}
    if not isinstance(obj, Mapping) or depth > _MAX_DEPTH:
        return {}
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        out.update(_flatten(value, f"{prefix}{key}.", depth + 1))
    return out


def _shvit_prefixes(tensors: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Each prefix under which SHViT-named keys sit, with how many (only prefixes with enough of them)."""
    counts: dict[str, int] = {}
    for key in tensors:
        for start in (0, *(i + 1 for i, ch in enumerate(key) if ch == ".")):
            if _SHVIT_KEY.fullmatch(key, start):
                counts[key[:start]] = counts.get(key[:start], 0) + 1
                break
    return {p: n for p, n in counts.items() if n >= _MIN_SHVIT_KEYS}


def _fallback(obj: object, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """No SHViT keys anywhere: the usual nesting keys unwrapped, so the mismatch report lists the file's own keys."""
    prefix = ""
    while isinstance(obj, Mapping):
        key = next((k for k in _NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        obj, prefix = obj[key], f"{prefix}{key}."
    inner = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)} or tensors
    return {k.removeprefix("module."): v for k, v in inner.items()}


def check_finite(state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Refuse NaN/Inf weights at load: exported, they only surface later as a ``max |Δ| nan`` parity failure."""
    bad = [
        (key, int((~torch.isfinite(value)).sum()))
        for key, value in state_dict.items()
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all())
    ]
    if not bad:
        return
    key, count = bad[0]
    more = f" (and {len(bad) - 1} more tensor{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
    raise WeightsError(
        f"{source} has non-finite values: {key} holds {count} NaN/Inf of {state_dict[key].numel()}{more}; "
        "the file is corrupt or training diverged — use another checkpoint"
    )


# --------------------------------------------------------------------------------------- layout

# Official prefix (inside blocks2/blocks3) of each timm ``downsample.N`` entry, N = 0..4.
_TIMM_DOWNSAMPLE = ("0.0", "0.1", "1", "2.0", "2.1")


def is_timm_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith("stages.") for k in state_dict)


def timm_to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``stages.i.downsample.n`` / ``stages.i.blocks.j`` back to ``blocks{i+1}.*`` (SHVIT_FACTS.md)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        m = re.fullmatch(r"stages\.(\d+)\.(downsample|blocks)\.(\d+)\.(.+)", key)
        if m is None or (m[2] == "downsample" and int(m[3]) >= len(_TIMM_DOWNSAMPLE)):
            out[key] = value
            continue
        stage, kind, idx, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "blocks":
            prefix = str(idx + (3 if stage > 0 else 0))
        else:
            prefix = _TIMM_DOWNSAMPLE[idx]
        out[f"blocks{stage + 1}.{prefix}.{rest}"] = value
    return out


def as_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official layout of either layout (detected from the keys)."""
    return timm_to_official(state_dict) if is_timm_layout(state_dict) else dict(state_dict)


def official_to_timm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`timm_to_official` (to write timm-layout files in tests and tools)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        m = re.fullmatch(r"blocks(\d)\.(\d+)\.(.+)", key)
        if m is None:
            out[key] = value
            continue
        stage, idx, rest = int(m[1]) - 1, int(m[2]), m[3]
        if stage == 0:
            out[f"stages.0.blocks.{idx}.{rest}"] = value
        elif idx >= 3:
            out[f"stages.{stage}.blocks.{idx - 3}.{rest}"] = value
        elif idx == 1:
            out[f"stages.{stage}.downsample.2.{rest}"] = value
        else:
            inner, tail = rest.split(".", 1)
            out[f"stages.{stage}.downsample.{_TIMM_DOWNSAMPLE.index(f'{idx}.{inner}')}.{tail}"] = value
    return out


# --------------------------------------------------------------------------------------- inference


def _per_stage[T](values: list[T]) -> tuple[T, T, T]:
    """One value per stage (three stages), as the config's per-stage tuple."""
    first, second, third = values
    return first, second, third


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> SHViTConfig | None:
    """Recover the full configuration from tensor shapes (official layout); None if it is no SHViT."""
    sd = state_dict
    try:
        e0 = sd["patch_embed.6.c.weight"].shape[0]
        e1 = sd["blocks2.1.conv3.c.weight"].shape[0]
        e2 = sd["blocks3.1.conv3.c.weight"].shape[0]
        head_w = sd["head.l.weight"]
    except KeyError:
        return None
    embed = (int(e0), int(e1), int(e2))
    depth, pdim, qk, types = [], [], [], []
    for stage in range(3):
        prefix = f"blocks{stage + 1}."
        start = 0 if stage == 0 else 3
        idx = {int(k[len(prefix) :].split(".")[0]) for k in sd if k.startswith(prefix)}
        blocks = sorted(i for i in idx if i >= start)
        depth.append(len(blocks))
        first = f"{prefix}{start}.mixer.m."
        if f"{first}pre_norm.weight" in sd:
            p = int(sd[f"{first}pre_norm.weight"].shape[0])
            pdim.append(p)
            qk.append((int(sd[f"{first}qkv.c.weight"].shape[0]) - p) // 2)
            types.append("s")
        else:
            pdim.append(_default_pdim(stage, embed))
            qk.append(16)
            types.append("i")
    return SHViTConfig(
        embed_dim=embed,
        depth=_per_stage(depth),
        partial_dim=_per_stage(pdim),
        types=_per_stage(types),
        qk_dim=_per_stage(qk),
        num_classes=int(head_w.shape[0]),
        distillation="head_dist.l.weight" in sd,
        in_chans=int(sd["patch_embed.0.c.weight"].shape[1]),
    )


def _default_pdim(stage: int, embed: tuple[int, int, int]) -> int:
    """An ``i`` stage has no attention, so its partial_dim is unobservable: reuse the table's value."""
    for v in VARIANTS.values():
        if v.config.embed_dim == embed:
            return v.config.partial_dim[stage]
    return embed[stage] // 4


def published_variant(config: SHViTConfig | None) -> str | None:
    """``s3`` when ``config`` has a published variant's shapes (any head, any input size), else None."""
    if config is None:
        return None
    for name, v in VARIANTS.items():
        c = v.config
        if (c.embed_dim, c.depth, c.partial_dim) == (config.embed_dim, config.depth, config.partial_dim):
            return name
    return None


def describe_config(config: SHViTConfig | None) -> str:
    """'SHViT-S3' when the shapes match a published variant, else the shapes themselves."""
    if config is None:
        return "not an SHViT checkpoint"
    name = published_variant(config)
    if name is not None:
        return f"SHViT-{name.upper()}"
    return f"an SHViT with embed_dim={list(config.embed_dim)}, depth={list(config.depth)}"


# --------------------------------------------------------------------------------------- loading


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Strictly load ``state_dict`` into ``model``, or raise one WeightsError that says what it is."""
    sd = as_official(state_dict)
    expected = model.state_dict()
    for key, value in list(sd.items()):
        target = expected.get(key)
        if target is not None and value.dim() == 2 and target.dim() == 4 and tuple(value.shape) == tuple(target.shape[:2]):
            sd[key] = value[:, :, None, None]  # the official loader's quirk: linear weights for 1x1 convs
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or mismatched:
        prefix = getattr(state_dict, "prefix", "")
        prefix = "" if prefix in _PLAIN_PREFIXES else prefix
        raise WeightsError(_mismatch_message(model, sd, source, missing, unexpected, mismatched, prefix=prefix))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in sd.items()}, strict=True)


def _mismatch_message(
    model: nn.Module,
    sd: Mapping[str, torch.Tensor],
    source: str,
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
    *,
    prefix: str = "",
) -> str:
    """One line; ``prefix`` is the wrapper the SHViT keys were found under, named so the user sees what was read."""
    config = getattr(model, "config", None)
    found = infer_config(sd)
    wanted = describe_config(config) if isinstance(config, SHViTConfig) else "this model"
    if not prefix:
        parts = [f"{source} does not fit {wanted}: it looks like {describe_config(found)}"]
    elif found is None:
        parts = [f"{source} does not fit {wanted}: its keys under '{prefix}' look like SHViT layers but not a whole SHViT"]
    else:
        parts = [f"{source} does not fit {wanted}: its keys under '{prefix}' look like {describe_config(found)}"]
    if found is not None and isinstance(config, SHViTConfig) and found.num_classes != config.num_classes:
        parts.append(f"its head has {found.num_classes} classes (pass num_classes={found.num_classes})")
    if missing:
        parts.append(f"{len(missing)} missing keys ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:3])}{', ...' if len(unexpected) > 3 else ''})")
    if mismatched:
        k = mismatched[0]
        parts.append(f"{len(mismatched)} shape mismatches (first: {k} {list(sd[k].shape)} vs {list(model.state_dict()[k].shape)})")
    published = published_variant(found)
    if published is not None and f"SHViT-{published.upper()}" != wanted:
        parts.append(f"it is an SHViT-{published.upper()} checkpoint: load it as variant {published}")
    elif found is not None and published is None:
        parts.append("to load it as it is, use variant auto, which builds the model the checkpoint describes")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------- download


def release_url(variant: str) -> str:
    base = os.environ.get(WEIGHTS_URL_ENV)
    return base.format(variant=variant) if base else RELEASE_URL.format(variant=variant)


def fetch_released(variant: str, *, progress: bool = True) -> Path:
    """The released checkpoint of ``variant``, downloaded once into the cache and reused."""
    target = cache_dir() / "weights" / f"shvit_{variant}.pth"
    if target.is_file() and target.stat().st_size > 0:
        return target
    url = release_url(variant)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            _download(url, out, progress=progress)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _resolve_host(url: str, *, timeout_s: float) -> None:
    """DNS lookups ignore urlopen's timeout; bound them so an offline machine fails fast."""
    parsed = urllib.parse.urlsplit(url)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(socket.getaddrinfo, parsed.hostname, parsed.port or 443).result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise OSError(f"looking up {parsed.hostname} took over {timeout_s:.0f} s") from None
    finally:
        pool.shutdown(wait=False)


def _download(url: str, out, *, progress: bool) -> None:
    hint = "download it by hand and give its path as the weights"
    try:
        _resolve_host(url, timeout_s=DNS_TIMEOUT_S)
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            from shvit.progress import progress_bar

            received = 0  # counted here: a hidden bar (not a terminal) counts nothing
            with progress_bar(total=total, unit="B", unit_scale=True, desc="downloading weights", enabled=progress) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise WeightsError(
                    f"download of {url} was cut short ({received} of {total} bytes): try again or {hint}", argument="weights"
                )
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"cannot download {url}: HTTP {exc.code}: {hint}", argument="weights") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsError(f"cannot download {url} (no network? {reason}): {hint}", argument="weights") from None
