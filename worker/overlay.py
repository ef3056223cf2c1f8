"""A stored crack map drawn over its photo: a heat map of tile probabilities and region boxes.

`read_overlay` reads the photo as a worker does and draws the map over it: the console's
photos (worker.ui.photos) and `crackq map -o` (worker.cli.maps) both go through it.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models.tiles import TileGrid
from worker.decode import decode_image
from worker.sources import SourceLimits, read_bytes

SHOWN_FROM = 0.3  # tiles below this stay transparent: the photo shows through untouched
ALPHA = (0.25, 0.6)  # opacity at SHOWN_FROM and at 1.0
BOX_COLOUR = (255, 0, 0)
LABEL_TEXT = (255, 255, 255)


def canvas_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The photo's size scaled down (never up) so its long side is at most `max_side`."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def read_overlay(
    ref: str,
    stored_map: dict[str, Any] | None,
    max_side: int,
    limits: SourceLimits,
    max_pixels: int,
    formats: Collection[str],
) -> Image.Image:
    """The photo at `ref`, at most `max_side` px on its long side, `stored_map` drawn over it.

    Read as a worker reads it (`limits`: roots, URL guard, size; `max_pixels`, `formats`);
    without a map the photo is only scaled. Raises ImageError when it cannot be read.
    """
    # Decode no more pixels than the canvas needs: a JPEG decodes at a reduced DCT scale
    # as long as both sides stay >= target, the canvas's short side when the map says
    # the photo's size.
    if stored_map is not None:
        target = min(canvas_size(int(stored_map["width"]), int(stored_map["height"]), max_side))
    else:
        target = max_side
    image = decode_image(read_bytes(ref, limits), max_pixels, target=target, formats=formats)
    if stored_map is not None:
        return render_overlay(image, stored_map, max_side)
    size = canvas_size(image.width, image.height, max_side)
    image = image.convert("RGB")
    return image if image.size == size else image.resize(size)


def render_overlay(
    image: Image.Image, stored_map: dict[str, Any], max_side: int = 2048
) -> Image.Image:
    """The photo at most `max_side` px on its long side with `stored_map` drawn over it.

    `stored_map` is what db.maps.read_map returns. Each canvas pixel is coloured by the
    highest probability of the tiles covering it: transparent below 0.3, then yellow
    turning red (and more opaque) up to 1.0. Each region gets a red box and its strongest
    tile's probability. `image` may be any size (a reduced JPEG decode): it is resized to
    the map's photo size scaled to the canvas, so boxes land where the map says.
    """
    if max_side < 1:
        raise ValueError(f"the overlay's long side must be >= 1 px, got {max_side}")
    width, height = int(stored_map["width"]), int(stored_map["height"])
    size = canvas_size(width, height, max_side)
    scale = size[0] / width, size[1] / height
    base = image.convert("RGB")
    if base.size != size:
        base = base.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    heat = heat_canvas(stored_map, size, scale)
    overlay = Image.fromarray(colour_ramp(heat), "RGBA")
    out = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")
    _draw_regions(out, stored_map["regions"], scale)
    return out


def heat_canvas(
    stored_map: dict[str, Any], size: tuple[int, int], scale: tuple[float, float]
) -> np.ndarray:
    """float32 (h, w): per canvas pixel, the max probability over the tiles covering it."""
    grid = TileGrid(int(stored_map["width"]), int(stored_map["height"]),
                    int(stored_map["tile"]), int(stored_map["stride"]))  # fmt: skip
    probs = np.asarray(stored_map["probabilities"], dtype=np.float32)
    if probs.shape != (grid.rows, grid.cols):
        raise ValueError(
            f"a map of {grid.rows} x {grid.cols} tiles has probabilities of shape {probs.shape}"
        )
    sx, sy = scale
    heat = np.zeros((size[1], size[0]), dtype=np.float32)
    for r, y in enumerate(grid.ys().tolist()):
        y0, y1 = math.floor(y * sy), math.ceil((y + grid.tile) * sy)
        for c, x in enumerate(grid.xs().tolist()):
            x0, x1 = math.floor(x * sx), math.ceil((x + grid.tile) * sx)
            np.maximum(heat[y0:y1, x0:x1], probs[r, c], out=heat[y0:y1, x0:x1])
    return heat


def colour_ramp(heat: np.ndarray) -> np.ndarray:
    """uint8 RGBA: transparent below SHOWN_FROM, then yellow -> red, opacity rising."""
    t = np.clip((heat - SHOWN_FROM) / (1.0 - SHOWN_FROM), 0.0, 1.0)
    alpha = np.where(heat >= SHOWN_FROM, ALPHA[0] + (ALPHA[1] - ALPHA[0]) * t, 0.0)
    rgba = np.empty((*heat.shape, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = np.round(255 * (1.0 - t)).astype(np.uint8)
    rgba[..., 2] = 0
    rgba[..., 3] = np.round(255 * alpha).astype(np.uint8)
    return rgba


def _draw_regions(
    canvas: Image.Image, regions: list[dict[str, Any]], scale: tuple[float, float]
) -> None:
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    line = max(2, round(max(canvas.size) / 700))
    for region in regions:
        x0, y0 = round(region["x0"] * scale[0]), round(region["y0"] * scale[1])
        x1, y1 = round(region["x1"] * scale[0]) - 1, round(region["y1"] * scale[1]) - 1
        draw.rectangle((x0, y0, x1, y1), outline=BOX_COLOUR, width=line)
        text = f"{region['max_probability']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        w, h = right - left + 6, bottom - top + 4
        ty = y0 - h if y0 - h >= 0 else y0 + line  # above the box, or inside when at the top
        draw.rectangle((x0, ty, x0 + w, ty + h), fill=BOX_COLOUR)
        draw.text((x0 + 3 - left, ty + 2 - top), text, fill=LABEL_TEXT, font=font)
