"""Training augmentation presets by name: `card` (TrainPreset), `photometric` and `robust`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from models.recipe import AUGMENTS
from models.transforms import INPUT_SIZE, TrainPreset

Preset = Callable[[Image.Image], np.ndarray]


class RandomTurn:
    """Rotate a (C,H,W) tensor by 0, 90, 180 or 270 degrees, exactly (no resampling)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rot90(x, int(torch.randint(0, 4, ())), dims=(-2, -1))


class ChannelGains:
    """Multiply R, G and B by independent gains in [1 - spread, 1 + spread]: white balance.

    ColorJitter's hue turns colours around the wheel; a warm or sodium-lit scene instead
    scales the channels unequally, which this draws (the `colour_cast` shift is 1.15, 1.0,
    0.75, inside the default box).
    """

    def __init__(self, spread: float) -> None:
        self.spread = spread

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        gains = 1.0 + self.spread * (2 * torch.rand(3, 1, 1) - 1)
        return (x.float() * gains).round_().clamp_(0, 255).to(torch.uint8)


class RandomNoise:
    """Additive Gaussian noise with sigma drawn in [0, max_sigma] (of 1.0 = full scale)."""

    def __init__(self, max_sigma: float) -> None:
        self.max_sigma = max_sigma

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.gaussian_noise(x, sigma=float(torch.rand(())) * self.max_sigma)


class RobustPreset:
    """Random crop-and-zoom, flips, turns, then photometric damage as a new site brings it.

    Each strength reaches past its shift in models.shifts, so the suite's fixed strengths
    lie inside what training saw: crop area down to 20% (double_scale: 25%), contrast
    down to x0.3 (low_contrast: x0.4), channel gains +-35% (colour_cast: 1.15/1.0/0.75),
    blur sigma to 2.5 px (blur: 2), noise sigma to 25 of 255 (noise: 20), JPEG quality
    from 10 (jpeg: 12), grey-scale (greyscale). Like TrainPreset: a PIL RGB image in,
    uint8 (size, size, 3) C-contiguous array out, and every draw from torch's RNG, so
    DataLoader seeding makes runs repeat.
    """

    def __init__(self, size: int = INPUT_SIZE) -> None:
        self.size = size
        self._transform = v2.Compose(
            [
                v2.PILToTensor(),
                v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.RandomVerticalFlip(),
                RandomTurn(),
                v2.RandomApply(
                    [
                        v2.ColorJitter(
                            brightness=(0.7, 1.3),
                            contrast=(0.3, 1.4),
                            saturation=(0.5, 1.5),
                            hue=0.04,
                        )
                    ],
                    p=0.8,
                ),  # fmt: skip
                v2.RandomApply([ChannelGains(0.35)], p=0.5),
                v2.RandomGrayscale(p=0.1),
                v2.RandomApply([v2.GaussianBlur(15, sigma=(0.1, 2.5))], p=0.2),
                v2.RandomApply([RandomNoise(25 / 255)], p=0.2),
                v2.RandomApply([v2.JPEG((10, 90))], p=0.2),
            ]
        )

    def __call__(self, img: Image.Image) -> np.ndarray:
        x = self._transform(img.convert("RGB"))
        return np.ascontiguousarray(x.permute(1, 2, 0).numpy())


class PhotometricPreset:
    """The card's geometry (resize, flips, turns), then light and colour only.

    Aimed by the robustness suite at the shifts the card's model fails (README
    "Augmentation"): contrast down to x0.25 (low_contrast: x0.4), channel gains +-35%
    (colour_cast), grey-scale; the shifts it already passes (blur, noise, JPEG, scale)
    get nothing, so training sees clean geometry. Same contract and RNG as TrainPreset.
    """

    def __init__(self, size: int = INPUT_SIZE) -> None:
        self.size = size
        self._geometry = TrainPreset(size, jitter=0.0)
        self._colour = v2.Compose(
            [
                v2.RandomApply(
                    [v2.ColorJitter(brightness=(0.7, 1.3), contrast=(0.25, 1.1))], p=0.8
                ),
                v2.RandomApply([ChannelGains(0.35)], p=0.5),
                v2.RandomGrayscale(p=0.1),
            ]
        )

    def __call__(self, img: Image.Image) -> np.ndarray:
        x = torch.from_numpy(self._geometry(img.convert("RGB")).copy()).permute(2, 0, 1)
        return np.ascontiguousarray(self._colour(x).permute(1, 2, 0).numpy())


def train_preset(augment: str, size: int = INPUT_SIZE) -> Preset:
    """The training transform a recipe's `augment` names (see models.recipe.AUGMENTS)."""
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
    presets = {"card": TrainPreset, "photometric": PhotometricPreset, "robust": RobustPreset}
    return presets[augment](size)
