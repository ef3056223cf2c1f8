"""Seed photos, the outcomes decode may give, and bounded Hypothesis settings for the fuzzers."""

from __future__ import annotations

import struct
import zlib
from datetime import timedelta
from io import BytesIO

import numpy as np
from hypothesis import HealthCheck, settings
from PIL import Image

from harness import images
from harness.raw_images import PNG_MAGIC
from worker.errors import ErrorCode

MAX_PIXELS = 1_000_000  # keeps a mutated size claim (40 x 65535 GIF) a quick refusal
# decode_image can only ever say these; anything else (INTERNAL_ERROR included) is a bug
DECODE_CODES = {
    ErrorCode.EMPTY_FILE,
    ErrorCode.NOT_AN_IMAGE,
    ErrorCode.TRUNCATED_IMAGE,
    ErrorCode.TOO_MANY_PIXELS,
    ErrorCode.IMAGE_TOO_SMALL,
}
# Reproducible in CI (derandomize, no example database) and bounded: 300 examples per
# property, 2 s per example, a hard timeout per test in case one decode never returns.
BOUNDED = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _save(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _noise(w: int, h: int, mode: str = "RGB") -> Image.Image:
    return Image.open(BytesIO(images.png(w, h, pattern="noise"))).convert(mode)


def _gif_two_frames() -> bytes:
    frames = [_noise(40, 32, "P"), _noise(40, 32, "P").transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0)


SEEDS = {
    "jpeg": images.jpeg(40, 32, pattern="noise"),
    "jpeg-progressive": _save(_noise(40, 32), "JPEG", progressive=True, quality=80),
    "jpeg-exif": images.exif_oriented_jpeg(6, 24, 32),
    "jpeg-cmyk": images.cmyk_jpeg(32, 24),
    "png": images.png(40, 32, pattern="gradient"),
    "png-palette": images.palette_png(40, 32, transparent=True),
    "png-16": images.png16(40, 32),
    "png-rgba": images.rgba_png(40, 32),
    "gif": _save(_noise(40, 32, "P"), "GIF"),
    "gif-animated": _gif_two_frames(),
    "tiff": _save(_noise(40, 32), "TIFF"),
    "tiff-lzw": _save(_noise(40, 32), "TIFF", compression="tiff_lzw"),
    "tiff-deflate": _save(_noise(40, 32, "L"), "TIFF", compression="tiff_adobe_deflate"),
    "tiff-float": images.tiff_float(40, 32),
}
# Found by this fuzzer (and fixed): hi - lo overflowed float32 in decode's range stretch.
FLOAT_TIFF_FULL_RANGE = _save(
    Image.fromarray(np.tile(np.linspace(-3e38, 3e38, 40, dtype=np.float32), (32, 1)), mode="F"),
    "TIFF",
)


def fix_png_crcs(data: bytearray) -> bytearray:
    """Recompute each chunk's CRC, so edits inside chunks reach the header parser and zlib."""
    pos = len(PNG_MAGIC)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(data):
            break
        data[end : end + 4] = struct.pack(">I", zlib.crc32(data[pos + 4 : end]))
        pos = end + 4
    return data
