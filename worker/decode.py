"""Image bytes -> upright 8-bit RGB PIL image, refusing bombs, corrupt files and tiny images."""

from __future__ import annotations

import logging
from io import BytesIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

from worker.errors import ErrorCode, ImageError

log = logging.getLogger(__name__)

# decode_image enforces its own max_pixels from the header, before any pixel is decoded.
# PIL's process-wide limit would add a second threshold unrelated to the configured one,
# reported as a warning (an exception under -W error) from whichever thread trips it.
Image.MAX_IMAGE_PIXELS = None
# Register every plugin now: lazy registration inside Image.open from several decode
# threads at once would race.
Image.init()

# Photo formats only: every other Pillow plugin is attack surface (and EPS would run
# Ghostscript). Older Pillows register phone JPEGs with a multi-picture extension as MPO.
FORMATS = tuple(f for f in ("JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "GIF") if f in Image.OPEN)

WHITE = (255, 255, 255)
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def decode_image(
    data: bytes, max_pixels: int, min_side: int = 16, target: int = 224
) -> Image.Image:
    """Decode `data` into an upright RGB image, or raise ImageError saying why not.

    JPEGs are decoded at a reduced DCT scale when that keeps both sides >= `target`,
    so a 12-megapixel photo costs about 1/64 of a full decode. Thread-safe: it touches
    no shared state.
    """
    if not data:
        raise ImageError(ErrorCode.EMPTY_FILE, "zero bytes")
    try:
        img = Image.open(BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageError(ErrorCode.NOT_AN_IMAGE, "not a recognised image format") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(ErrorCode.TOO_MANY_PIXELS, str(exc)) from exc
    except Exception as exc:  # plugins raise anything on a hostile header
        raise ImageError(ErrorCode.NOT_AN_IMAGE, f"unreadable header: {exc!r}") from exc
    _check_size(img.size, max_pixels, min_side)
    if isinstance(img, JpegImageFile):
        img.draft("RGB", (target, target))
    try:
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(ErrorCode.TOO_MANY_PIXELS, str(exc)) from exc
    except Exception as exc:  # "image file is truncated", zlib/struct errors, ...
        raise ImageError(ErrorCode.TRUNCATED_IMAGE, f"corrupt or truncated: {exc}") from exc
    # some formats (GIF frames) settle their size only while loading
    _check_size(img.size, max_pixels, min_side)
    _make_upright(img)
    return _to_rgb(img)


def _check_size(size: tuple[int, int], max_pixels: int, min_side: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(ErrorCode.TOO_MANY_PIXELS, f"{width}x{height} is over {max_pixels} pixels")
    if min(width, height) < min_side:
        raise ImageError(ErrorCode.IMAGE_TOO_SMALL, f"{width}x{height} has a side under {min_side}")


def _make_upright(img: Image.Image) -> None:
    """Apply the EXIF orientation in place, so a photo taken sideways is classified upright."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception as exc:  # broken EXIF must not cost an otherwise good photo
        log.debug("ignoring unreadable EXIF orientation: %r", exc)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode -> 8-bit RGB.

    Transparency is composited onto white rather than dropped: a plain convert keeps
    whatever colour sits under transparent pixels (often black or garbage), which the
    classifier would see as texture.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")  # P/L/RGB with a transparency key become real alpha
        out = Image.new("RGB", rgba.size, WHITE)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if img.mode.startswith("I") or img.mode == "F":
        return _wide_to_rgb(img)
    try:
        return img.convert("RGB")  # 1, L, P, CMYK, YCbCr, ...
    except ValueError as exc:  # LAB, HSV: no direct conversion in Pillow
        raise ImageError(ErrorCode.NOT_AN_IMAGE, f"unsupported pixel mode {img.mode}") from exc


def _wide_to_rgb(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey -> 8-bit, scaled by the range the data claims.

    Pillow's own convert clips these to 0..255, which turns most 16-bit photos white.
    """
    # float64: stretching a float32 range as wide as +-3e38 overflows float32
    a = np.nan_to_num(np.asarray(img, dtype=np.float32)).astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if img.mode.startswith("I;16"):
        a = a / 257.0
    elif img.mode == "F" and lo >= 0.0 and hi <= 1.0:
        a = a * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        pass
    elif lo >= 0.0 and hi <= 65535.0:
        a = a / 257.0
    else:  # no known range: stretch what is there
        a = (a - lo) * (255.0 / max(hi - lo, 1e-12))
    grey = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")
    return grey.convert("RGB")
