"""Named, seeded image shifts a new inspection site brings: optics, sensor, scale, colour, surface."""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

ShiftFn = Callable[[Image.Image, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Shift:
    """One controlled shift: its name, one line of what it simulates, and (image, rng) -> image.

    Every shift takes and returns a PIL RGB image of the same size (rot90 swaps the sides
    of a non-square image, as a turned camera would). The strengths below are fixed, so a
    suite's figures compare across models; the functions take them as keywords so that
    training augmentations can draw them at random instead.
    """

    name: str
    simulates: str
    apply: ShiftFn

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        return self.apply(image.convert("RGB"), rng)


def rng_for(seed: int, name: str, index: int) -> np.random.Generator:
    """The generator for photo `index` under shift `name`: the same photo gets the same noise
    whatever order or batch it is shifted in (crc32, not hash(), which varies per process)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), index])


def _to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def blur(image: Image.Image, rng: np.random.Generator, radius: float = 2.0) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def sensor_noise(image: Image.Image, rng: np.random.Generator, sigma: float = 20.0) -> Image.Image:
    pixels = _pixels(image)
    return _to_image(pixels + rng.normal(0.0, sigma, pixels.shape))


def low_contrast(image: Image.Image, rng: np.random.Generator, factor: float = 0.4) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(factor)


def heavy_jpeg(image: Image.Image, rng: np.random.Generator, quality: int = 12) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def half_scale(image: Image.Image, rng: np.random.Generator, factor: float = 0.5) -> Image.Image:
    """Shrink, then enlarge back: a patch of the same area seen with `factor` x the pixels."""
    w, h = image.size
    small = image.resize(
        (max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BILINEAR
    )
    return small.resize((w, h), Image.Resampling.BILINEAR)


def double_scale(image: Image.Image, rng: np.random.Generator, factor: float = 2.0) -> Image.Image:
    """Enlarge and crop the centre at the original size: the camera `factor` x closer."""
    w, h = image.size
    big = image.resize((round(w * factor), round(h * factor)), Image.Resampling.BICUBIC)
    left, top = (big.width - w) // 2, (big.height - h) // 2
    return big.crop((left, top, left + w, top + h))


def colour_cast(
    image: Image.Image, rng: np.random.Generator, gains: tuple[float, ...] = (1.15, 1.0, 0.75)
) -> Image.Image:
    return _to_image(_pixels(image) * np.asarray(gains, dtype=np.float32))


def greyscale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.convert("L").convert("RGB")


def rot90(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.transpose(Image.Transpose.ROTATE_90)


# Dark and light ends of each palette: asphalt, stained concrete, weathered render.
PALETTES = (((60, 60, 62), (135, 130, 125)), ((95, 85, 70), (200, 190, 170)),
            ((120, 110, 105), (225, 215, 200)))  # fmt: skip


def surface_texture(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A procedural surface: blotches at three scales plus aggregate grain, in a stone palette.

    It stands in for other surfaces (asphalt, stained or weathered concrete) because no
    second crack dataset is available offline; it is not a real other site.
    """
    w, h = size
    t = np.zeros((h, w), dtype=np.float32)
    for cells, weight in ((3, 1.0), (9, 0.5), (27, 0.25)):  # low frequencies dominate: stains
        grid = rng.random((cells, cells)).astype(np.float32)
        t += weight * np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC))
    t += rng.normal(0.0, 0.15, t.shape).astype(np.float32)  # the grain of the aggregate
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    dark, light = (np.asarray(c, dtype=np.float32) for c in PALETTES[rng.integers(len(PALETTES))])
    return _to_image(dark + t[..., None] * (light - dark))


def texture(image: Image.Image, rng: np.random.Generator, alpha: float = 0.4) -> Image.Image:
    """Blend a procedural surface over the photo: cracks stay, the surface around them changes."""
    return Image.blend(image, surface_texture(image.size, rng), alpha)


def clean(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image


CLEAN = Shift("clean", "the held-out photos as they are", clean)
SHIFTS: dict[str, Shift] = {
    s.name: s
    for s in (
        Shift("blur", "a soft or out-of-focus camera (Gaussian, radius 2 px)", blur),
        Shift("noise", "a noisy sensor in poor light (Gaussian, sigma 20 of 255)", sensor_noise),
        Shift("low_contrast", "haze, flat light or a washed-out exposure (x0.4)", low_contrast),
        Shift("jpeg", "heavy compression by a phone or a drone link (quality 12)", heavy_jpeg),
        Shift("half_scale", "a farther or lower-resolution camera: half the detail", half_scale),
        Shift("double_scale", "a closer camera: cracks twice as wide, centre crop", double_scale),
        Shift("colour_cast", "warm light, sodium lamps or white balance off", colour_cast),
        Shift("greyscale", "a monochrome camera", greyscale),
        Shift("rot90", "the camera turned by 90 degrees", rot90),
        Shift("texture", "another surface: a procedural asphalt or stained concrete", texture),
    )
}
