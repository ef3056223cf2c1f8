"""Procedural concrete-like photos with and without cracks, for demos and tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from models.datasets import Sample

CLASS_DIRS = ("Negative", "Positive")  # index = label, as in models.network.CLASSES


def make_synthetic_dataset(
    root: Path | str, n_per_class: int, size: int = 227, seed: int = 0
) -> list[Sample]:
    """Write `n_per_class` JPEGs to root/Positive (cracked) and root/Negative; return samples.

    Every image is a concrete-like texture (tinted grey, blotches, a lighting gradient,
    grain, a few dark pores); cracked ones add a dark branching random-walk line wide
    enough to survive downscaling to 64 px, so a small model can learn the task quickly.
    """
    root = Path(root)
    samples: list[Sample] = []
    for label, name in enumerate(CLASS_DIRS):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            # One stream per image, so asking for more images keeps the first ones the same.
            rng = np.random.default_rng([seed, label, i])
            img = concrete_texture(rng, size)
            if label:
                img = add_crack(img, rng)
            path = folder / f"{i + 1:05d}.jpg"
            img.save(path, quality=90)
            samples.append((str(path), label))
    return samples


def concrete_texture(rng: np.random.Generator, size: int) -> Image.Image:
    """A crack-free concrete-like RGB surface."""
    grey = rng.uniform(110, 190)
    cells = int(rng.integers(3, 9))
    blotch_small = Image.fromarray(rng.normal(0, 1, (cells, cells)).astype(np.float32), "F")
    blotches = np.asarray(blotch_small.resize((size, size), Image.Resampling.BICUBIC))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * math.pi)
    gradient = (xx * math.cos(angle) + yy * math.sin(angle)) * rng.uniform(-25, 25)
    grain = rng.normal(0, rng.uniform(4, 10), (size, size)).astype(np.float32)
    surface = grey + rng.uniform(6, 18) * blotches + gradient + grain
    tint = 1.0 + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    rgb = surface[..., None] * tint
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    _add_pores(img, rng)
    return img


def _add_pores(img: Image.Image, rng: np.random.Generator) -> None:
    # Small dark dots in both classes, so "any dark pixel" is not the answer.
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 12))):
        x, y = rng.uniform(0, img.width, 2)
        r = rng.uniform(0.8, 2.5)
        shade = int(rng.uniform(40, 100))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(shade, shade, shade))


def add_crack(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Darken `img` along a branching random walk of varying width."""
    size = img.width
    mask = Image.new("L", img.size, 0)
    draw = ImageDraw.Draw(mask)
    edge = int(rng.integers(4))
    t = rng.uniform(0.1, 0.9) * size
    x, y = [(t, 0.0), (size, t), (t, size), (0.0, t)][edge]
    heading = math.atan2(size / 2 - y, size / 2 - x) + rng.uniform(-0.6, 0.6)
    width = rng.uniform(2.5, 5.5) * size / 227
    walks = [(x, y, heading, width, int(rng.integers(40, 70)))]
    branches = 0
    while walks:
        x, y, heading, width, steps = walks.pop()
        angle = heading
        for _ in range(steps):
            # Pull back toward the heading: a crack wanders but keeps its course.
            angle += rng.normal(0, 0.35) + 0.25 * (heading - angle)
            step = rng.uniform(2.0, 5.0) * size / 227
            nx, ny = x + step * math.cos(angle), y + step * math.sin(angle)
            width = float(np.clip(width + rng.normal(0, 0.3), 1.0, 6.0))
            draw.line((x, y, nx, ny), fill=255, width=max(1, round(width)))
            r = width / 2
            draw.ellipse((nx - r, ny - r, nx + r, ny + r), fill=255)
            if branches < 3 and rng.random() < 0.03:
                branches += 1
                turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.1)
                walks.append((nx, ny, angle + turn, width * 0.6, steps // 2))
            x, y = nx, ny
            if not (-5 <= x <= size + 5 and -5 <= y <= size + 5):
                break
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.float32) / 255.0
    depth = rng.uniform(0.55, 0.8)
    rgb = np.asarray(img, dtype=np.float32) * (1.0 - depth * soft[..., None])
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
