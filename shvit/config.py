"""The variant table: every SHViT size is one row, everything else is derived from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Preprocessing:
    """The evaluation transform the released weights expect, as data (timm's pretrained-config fields).

    Resize the short side to ``resize_size`` (``interpolation``), centre-crop ``input_size``, scale to
    [0, 1], normalise with ``mean``/``std``. calib, every exporter's pixel front end and the demo apps
    read these numbers from here, so they cannot drift apart. ``Preprocessing()`` is the ImageNet
    default at 224 (timm's default input size too; S4 uses 256, see ``SHViTConfig.preprocessing``).
    """

    input_size: int = 224
    crop_fraction: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @property
    def resize_size(self) -> int:
        """Short side before the centre crop: torchvision's ``Resize(int(input_size / crop_fraction))``."""
        return int(self.input_size / self.crop_fraction)

    @property
    def pixel_mean(self) -> tuple[float, float, float]:
        """``mean`` on the 0-255 pixel scale: what a pixel front end subtracts before the scaled stem."""
        return tuple(255.0 * m for m in self.mean)  # type: ignore[return-value]


IMAGENET_MEAN: tuple[float, float, float] = Preprocessing().mean
"""``Preprocessing().mean`` (every SHViT release uses it), for code that predates the dataclass."""
IMAGENET_STD: tuple[float, float, float] = Preprocessing().std
"""``Preprocessing().std``."""


@dataclass(frozen=True)
class SHViTConfig:
    """Hyper-parameters of one SHViT network (names follow the paper and the official code)."""

    embed_dim: tuple[int, int, int]
    depth: tuple[int, int, int]
    partial_dim: tuple[int, int, int]
    types: tuple[str, str, str] = ("i", "s", "s")
    qk_dim: tuple[int, int, int] = (16, 16, 16)
    num_classes: int = 1000
    distillation: bool = False
    img_size: int = 224
    in_chans: int = 3

    @property
    def preprocessing(self) -> Preprocessing:
        """The eval transform at this network's input size."""
        return Preprocessing(input_size=self.img_size)

    def with_classes(self, num_classes: int) -> SHViTConfig:
        return replace(self, num_classes=num_classes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SHViTConfig:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fields)


@dataclass(frozen=True)
class PublishedFacts:
    """Numbers from the paper's table that tests hold the implementation to."""

    params: int
    macs_m: int
    top1: float


@dataclass(frozen=True)
class Variant:
    name: str
    config: SHViTConfig
    published: PublishedFacts
    aliases: tuple[str, ...] = field(default=())

    @property
    def preprocessing(self) -> Preprocessing:
        return self.config.preprocessing


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("s1", SHViTConfig((128, 224, 320), (2, 4, 5), (32, 48, 68)), PublishedFacts(6_330_808, 241, 72.8)),
        Variant("s2", SHViTConfig((128, 308, 448), (2, 4, 5), (32, 66, 96)), PublishedFacts(11_483_072, 365, 75.2)),
        Variant("s3", SHViTConfig((192, 352, 448), (3, 5, 5), (48, 75, 96)), PublishedFacts(14_245_273, 601, 77.4)),
        Variant(
            "s4",
            SHViTConfig((224, 336, 448), (4, 7, 6), (48, 72, 96), img_size=256),
            PublishedFacts(16_588_484, 986, 79.4),
        ),
    )
}

RELEASE_URL = "https://github.com/ysj9909/SHViT/releases/download/v1.0/shvit_{variant}.pth"


def get_variant(name: str) -> Variant:
    key = name.strip().lower().removeprefix("shvit_").removeprefix("shvit-")
    if key not in VARIANTS:
        raise ValueError(f"unknown SHViT variant {name!r}: choose one of {', '.join(VARIANTS)}")
    return VARIANTS[key]
