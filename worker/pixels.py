"""Any Pillow pixel mode -> 8-bit RGB, in bands of rows: never a wide copy of the whole image."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

from worker.errors import ErrorCode, ImageError

WHITE = (255, 255, 255)
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Mode conversions run over bands of rows this many pixels large, never the whole image.
BAND_PIXELS = 1 << 16


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode -> 8-bit RGB, holding at most the image, its RGB copy and one band.

    Transparency is composited onto white rather than dropped: a plain convert keeps
    whatever colour sits under transparent pixels (often black or garbage), which the
    classifier would see as texture.
    """
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        return _wide_to_rgb(img)
    if img.mode in ALPHA_MODES or "transparency" in img.info:
        return _onto_white(img)
    try:
        return img.convert("RGB")  # 1, L, P, CMYK, YCbCr, ...: no copy wider than RGB
    except ValueError as exc:  # LAB, HSV: no direct conversion in Pillow
        raise ImageError(ErrorCode.NOT_AN_IMAGE, f"unsupported pixel mode {img.mode}") from exc


def _bands(size: tuple[int, int]) -> Iterator[tuple[int, int, int, int]]:
    width, height = size
    rows = max(1, BAND_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        yield (0, top, width, min(height, top + rows))


def _onto_white(img: Image.Image) -> Image.Image:
    """Composite band by band: a whole-image RGBA copy would cost more than the RGB result."""
    out = Image.new("RGB", img.size, WHITE)
    for box in _bands(img.size):
        band = img.crop(box)  # keeps the palette and the transparency key
        if band.mode not in ("RGBA", "LA"):  # P/L/RGB with a key, premultiplied, PA
            band = band.convert("RGBA")
        out.paste(band, box[:2], band)  # the alpha band is the mask
    return out


def _wide_to_rgb(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey -> 8-bit, scaled by the range the data claims.

    Pillow's own convert clips these to 0..255, which turns most 16-bit photos white.
    Two passes over bands of rows (range, then scale), so no wide copy of the whole
    image is ever made; a 16-bit transparency key becomes white.
    """
    lo, hi = 0.0, 0.0
    if not img.mode.startswith("I;16"):  # 16-bit is always scaled by 257
        ranges = [(float(a.min()), float(a.max())) for a in _wide_bands(img) if a.size]
        if ranges:
            lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    key = img.info.get("transparency")
    out = Image.new("RGB", img.size)
    for box, a in zip(_bands(img.size), _wide_bands(img), strict=True):
        grey = np.clip(np.rint(_scaled(a.astype(np.float64), img.mode, lo, hi)), 0, 255)
        grey = grey.astype(np.uint8)
        if isinstance(key, int):
            grey[np.asarray(img.crop(box)) == key] = 255
        out.paste(Image.fromarray(grey), box[:2])
    return out


def _wide_bands(img: Image.Image) -> Iterator[np.ndarray]:
    for box in _bands(img.size):
        yield np.nan_to_num(np.asarray(img.crop(box), dtype=np.float32))


def _scaled(a: np.ndarray, mode: str, lo: float, hi: float) -> np.ndarray:
    # float64: stretching a float32 range as wide as +-3e38 overflows float32
    if mode.startswith("I;16"):
        return a / 257.0
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        return a * 255.0
    if lo >= 0.0 and hi <= 255.0:
        return a
    if lo >= 0.0 and hi <= 65535.0:
        return a / 257.0
    return (a - lo) * (255.0 / max(hi - lo, 1e-12))  # no known range: stretch what is there
