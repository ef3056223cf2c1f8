"""Property: mutated, cut or spliced photo bytes decode to model pixels or a known ImageError."""

from __future__ import annotations

import struct
import warnings
import zlib
from datetime import timedelta
from io import BytesIO

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests import images
from worker.decode import decode_image
from worker.errors import ErrorCode, ImageError
from worker.pipeline import preset

MAX_PIXELS = 1_000_000  # keeps a mutated size claim (40 x 65535 GIF) a quick refusal
SIZE = 224
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
# values that make width/height/length/offset fields interesting: zero, one, sign and
# overflow edges, and sizes just over the pixel limit
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EDGE_INTS = [0, 1, 15, 16, 255, 256, 0x7FFF, 0xFFFF, 0x10000, 30000, 0x7FFFFFFF, 0xFFFFFFFF]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed photo after a few byte flips, int overwrites, splices, inserts, cuts."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "int", "splice", "insert", "delete", "truncate"]))
        if len(data) < 2:
            break
        # headers are where parsers read sizes and offsets: aim half the flips and int
        # writes just past the magic number, the rest (and every cut) anywhere
        if op in ("flip", "int") and draw(st.booleans()):
            pos = draw(st.integers(min(8, len(data) - 1), min(len(data) - 1, 128)))
        else:
            pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "int":
            value = draw(st.sampled_from(EDGE_INTS))
            fmt = draw(st.sampled_from([">H", "<H", ">I", "<I"]))
            packed = struct.pack(fmt, value & (0xFFFF if fmt.endswith("H") else 0xFFFFFFFF))
            data[pos : pos + len(packed)] = packed
        elif op == "splice":  # this file's head on another file's tail
            other = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
            data = data[:pos] + other[draw(st.integers(0, len(other) - 1)) :]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        else:
            data = data[:pos]
    if data.startswith(PNG_MAGIC) and draw(st.booleans()):
        data = _fix_png_crcs(data)  # else a PNG edit mostly dies at the CRC check on open
    return bytes(data)


def _fix_png_crcs(data: bytearray) -> bytearray:
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


def decodes_or_refuses(data: bytes) -> None:
    """The property: model-ready pixels, or ImageError with a code decode may give."""
    try:
        img = decode_image(data, MAX_PIXELS, target=SIZE)
    except ImageError as exc:
        assert exc.code in DECODE_CODES, exc
        event(exc.code.value)  # --hypothesis-show-statistics shows the mix of outcomes
        return
    event("decoded")
    assert img.mode == "RGB"
    assert min(img.size) >= 16 and img.width * img.height <= MAX_PIXELS
    arr = np.asarray(img)
    assert arr.dtype == np.uint8 and arr.shape == (img.height, img.width, 3)
    pixels = preset(SIZE)(img)  # what the pipeline hands the model
    assert pixels.dtype == np.uint8 and pixels.shape == (SIZE, SIZE, 3)


def test_every_seed_decodes() -> None:
    """Unmutated seeds are valid, so a refusal below is the mutation's doing."""
    for name, data in SEEDS.items():
        assert decode_image(data, MAX_PIXELS).mode == "RGB", name


@pytest.mark.timeout(60, method="thread")  # a hung decode ends the run, loudly
@BOUNDED
@given(mutated())
def test_mutated_photos_decode_or_refuse(data: bytes) -> None:
    # as in production, where Pillow's warnings (corrupt EXIF, odd TIFF tags) do not raise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decodes_or_refuses(data)


@pytest.mark.timeout(60, method="thread")  # a hung decode ends the run, loudly
@BOUNDED
@given(mutated())
@example(FLOAT_TIFF_FULL_RANGE)
def test_mutated_photos_decode_or_refuse_with_warnings_as_errors(data: bytes) -> None:
    """Under -W error a Pillow warning becomes an exception in the middle of a decode."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decodes_or_refuses(data)


@pytest.mark.timeout(60, method="thread")  # a hung decode ends the run, loudly
@BOUNDED
@given(st.binary(max_size=2048))
def test_random_bytes_decode_or_refuse(data: bytes) -> None:
    decodes_or_refuses(data)
