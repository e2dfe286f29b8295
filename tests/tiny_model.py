"""A tiny SHViT trained on generated shapes, so that parity and accuracy tests mean something.

Random weights make SHViT's logits nearly image-independent (the head bias dominates), which hides
quantisation damage. This model is trained in well under a minute on 2 CPU cores and cached.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import calib
import shvit
from shvit.config import SHViTConfig

TINY_CONFIG = SHViTConfig(
    embed_dim=(32, 48, 64),
    depth=(1, 2, 2),
    partial_dim=(8, 12, 16),
    types=("i", "s", "s"),
    num_classes=8,
    img_size=96,
)
TRAIN_PER_CLASS = 96
EVAL_PER_CLASS = 12
STEPS = 400
BATCH = 64
SEED = 0
RECIPE_VERSION = 1


@dataclass(frozen=True)
class TinyModel:
    checkpoint: Path  # official layout: {"model": state_dict}
    images_dir: Path  # held-out images, one sub-folder per class
    labels_file: Path
    class_names: list[str]
    accuracy: float  # PyTorch top-1 on the held-out images
    input_size: int = TINY_CONFIG.img_size


def _recipe_key() -> str:
    recipe = {
        "config": TINY_CONFIG.to_dict(),
        "steps": STEPS,
        "batch": BATCH,
        "seed": SEED,
        "per_class": TRAIN_PER_CLASS,
        "version": RECIPE_VERSION,
        "preprocess": getattr(calib, "PREPROCESS_VERSION", 0),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def train(seed: int = SEED) -> tuple[torch.nn.Module, list[str]]:
    torch.manual_seed(seed)
    pixels, labels, names = calib.make_class_dataset(TRAIN_PER_CLASS, TINY_CONFIG.img_size, seed=seed, num_classes=TINY_CONFIG.num_classes)
    x_all = torch.from_numpy(calib.normalize(pixels))
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    model = shvit.SHViT(TINY_CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-3, weight_decay=0.02)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=6e-3, total_steps=STEPS, pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    with torch.enable_grad():
        for _ in range(STEPS):
            idx = torch.randint(0, len(x_all), (BATCH,), generator=gen)
            x = x_all[idx]
            flip = torch.rand(BATCH, generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)  # shapes are mirror-symmetric classes
            loss = torch.nn.functional.cross_entropy(model(x), y_all[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval(), names


def build(root: Path) -> TinyModel:
    """Train (or reuse from ``root``) the tiny model and write its held-out image folder."""
    from filelock import FileLock

    root = root / _recipe_key()
    ckpt, images, labels_file, meta = root / "tiny.pth", root / "images", root / "labels.txt", root / "meta.json"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.with_suffix(".lock"))):  # one xdist worker trains, the other waits and reuses
        if not meta.exists():
            model, names = train()
            torch.save({"model": model.state_dict()}, ckpt)
            px, lb, _ = calib.make_class_dataset(
                EVAL_PER_CLASS, TINY_CONFIG.img_size, seed=SEED + 1000, num_classes=TINY_CONFIG.num_classes
            )
            calib.write_dataset(images, px, lb, names)
            with torch.no_grad():
                pred = model(torch.from_numpy(calib.normalize(px))).argmax(1).numpy()
            labels_file.write_text("\n".join(names) + "\n")
            meta.write_text(json.dumps({"names": names, "accuracy": float(np.mean(pred == np.asarray(lb)))}))
    info = json.loads(meta.read_text())
    return TinyModel(ckpt, images, labels_file, info["names"], info["accuracy"])
