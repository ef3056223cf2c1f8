"""Image fixtures made with Pillow: valid, odd modes, EXIF-rotated, truncated, not images."""

from __future__ import annotations

from io import BytesIO
from typing import Literal

import numpy as np
from PIL import Image

Pattern = Literal["solid", "gradient", "noise"]
ORIENTATION = 0x0112  # EXIF tag


def _pixels(w: int, h: int, color: tuple[int, int, int], pattern: Pattern) -> Image.Image:
    if pattern == "solid":
        return Image.new("RGB", (w, h), color)
    if pattern == "gradient":
        x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
        y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
        base = np.asarray(color, dtype=np.float32)[None, None, :]
        arr = (x * 0.5 + y * 0.5 + base) % 256
        return Image.fromarray(arr.astype(np.uint8), "RGB")
    rng = np.random.default_rng(w * 7919 + h)  # deterministic per size
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _save(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg(
    w: int = 64,
    h: int = 48,
    color: tuple[int, int, int] = (180, 120, 60),
    pattern: Pattern = "solid",
    quality: int = 90,
    progressive: bool = False,
) -> bytes:
    return _save(_pixels(w, h, color, pattern), "JPEG", quality=quality, progressive=progressive)


def png(
    w: int = 64,
    h: int = 48,
    color: tuple[int, int, int] = (180, 120, 60),
    pattern: Pattern = "solid",
) -> bytes:
    return _save(_pixels(w, h, color, pattern), "PNG")


def truncated_jpeg(w: int = 256, h: int = 256) -> bytes:
    """A noisy JPEG cut in half: the header is fine, the scan data is not all there."""
    data = jpeg(w, h, pattern="noise")
    return data[: len(data) // 2]


def truncated_png(w: int = 128, h: int = 128) -> bytes:
    data = png(w, h, pattern="noise")
    return data[: len(data) // 2]


def not_an_image() -> bytes:
    return b"%PDF-1.7\nthis is a document, not a photo of concrete\n" * 8


def cmyk_jpeg(w: int = 64, h: int = 48) -> bytes:
    return _save(Image.new("CMYK", (w, h), (0, 200, 200, 0)), "JPEG")  # red-ish


def grayscale_png(w: int = 64, h: int = 48, value: int = 128) -> bytes:
    return _save(Image.new("L", (w, h), value), "PNG")


def bilevel_png(w: int = 64, h: int = 48) -> bytes:
    return _save(Image.new("1", (w, h), 1), "PNG")


def png16(w: int = 64, h: int = 48) -> bytes:
    """16-bit greyscale, a horizontal ramp over the whole 0..65535 range."""
    ramp = np.linspace(0, 65535, w, dtype=np.float64).round().astype(np.uint16)
    img = Image.fromarray(np.tile(ramp, (h, 1)))
    assert img.mode.startswith("I;16")
    return _save(img, "PNG")


def tiff_int32(w: int = 64, h: int = 48, compression: str = "raw") -> bytes:
    """Mode I (32-bit signed) holding 16-bit-range values, as scientific cameras write."""
    ramp = np.linspace(0, 65535, w).round().astype(np.int32)
    return _save(Image.fromarray(np.tile(ramp, (h, 1))), "TIFF", compression=compression)


def tiff_float(w: int = 64, h: int = 48, compression: str = "raw") -> bytes:
    """Mode F holding 0..1 floats."""
    ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)
    return _save(Image.fromarray(np.tile(ramp, (h, 1))), "TIFF", compression=compression)


def palette_png(w: int = 64, h: int = 48, transparent: bool = False) -> bytes:
    """Left half palette index 1 (green), right half index 0 (blue, or transparent)."""
    img = Image.new("P", (w, h), 0)
    img.putpalette([0, 0, 255, 0, 255, 0] + [0, 0, 0] * 254)
    img.paste(1, (0, 0, w // 2, h))
    return _save(img, "PNG", transparency=0) if transparent else _save(img, "PNG")


def rgba_png(w: int = 64, h: int = 48) -> bytes:
    """Left half opaque red, right half fully transparent black."""
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, w // 2, h))
    return _save(img, "PNG")


def bmp(w: int = 32, h: int = 32) -> bytes:
    return _save(Image.new("RGB", (w, h), (1, 2, 3)), "BMP")


def gif(w: int = 32, h: int = 32) -> bytes:
    return _save(Image.new("P", (w, h), 1), "GIF")


def la_png(w: int = 64, h: int = 48) -> bytes:
    """Grey + alpha: top half opaque dark grey, bottom half transparent."""
    img = Image.new("LA", (w, h), (0, 0))
    img.paste((40, 255), (0, 0, w, h // 2))
    return _save(img, "PNG")


def exif_rotated_jpeg(w: int = 48, h: int = 64) -> bytes:
    """Upright it is w x h with a white top half and black bottom half.

    Stored sideways (h x w, bright half on the left) with EXIF orientation 6, which
    tells viewers to rotate 90 degrees clockwise; without the transpose the decoded
    image is h x w, and rotating the wrong way puts the bright half at the bottom.
    """
    upright = Image.new("RGB", (w, h), (0, 0, 0))
    upright.paste((255, 255, 255), (0, 0, w, h // 2))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return _save(stored, "JPEG", quality=95, exif=exif.tobytes())


# What exif_transpose does for each orientation, so a builder can store the inverse.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
}


def exif_oriented_jpeg(orientation: int, w: int = 48, h: int = 64) -> bytes:
    """Upright it is w x h, white in the top-left quadrant and black elsewhere.

    Stored as a camera with EXIF `orientation` (1..8) would store it, so only a decoder
    that applies that orientation gets the bright quadrant back to the top left; every
    wrong transform puts it in another corner (the quadrant makes all eight distinct).
    """
    upright = Image.new("RGB", (w, h), (0, 0, 0))
    upright.paste((255, 255, 255), (0, 0, w // 2, h // 2))
    stored = upright
    if orientation != 1:
        op = _TRANSPOSE[orientation]
        stored = upright.transpose(_INVERSE.get(op, op))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return _save(stored, "JPEG", quality=95, exif=exif.tobytes())


def tiny_1x1() -> bytes:
    return _save(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG")
