"""Property: mutated, cut or spliced photo bytes decode to model pixels or a known ImageError."""

from __future__ import annotations

import struct
import warnings
from typing import Literal

import numpy as np
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from harness.raw_images import PNG_MAGIC
from models.formats import PHOTO_FORMAT_NAMES
from tests.worker.fuzzing import (
    BOUNDED,
    DECODE_CODES,
    FLOAT_TIFF_FULL_RANGE,
    MAX_PIXELS,
    SEEDS,
    fix_png_crcs,
)
from worker.decode import decode_image
from worker.errors import ImageError
from worker.pipeline import preset

SIZE = 224
# values that make width/height/length/offset fields interesting: zero, one, sign and
# overflow edges, and sizes just over the pixel limit
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
        data = fix_png_crcs(data)  # else a PNG edit mostly dies at the CRC check on open
    return bytes(data)


def decodes_or_refuses(data: bytes) -> None:
    """The property: model-ready pixels, or ImageError with a code decode may give."""
    try:
        img = decode_image(data, MAX_PIXELS, target=SIZE, formats=PHOTO_FORMAT_NAMES)
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
        assert decode_image(data, MAX_PIXELS, formats=PHOTO_FORMAT_NAMES).mode == "RGB", name


@pytest.mark.timeout(60, method="thread")  # a hung decode ends the run, loudly
@pytest.mark.parametrize("pillow_warnings", ["ignore", "error"])
@BOUNDED
@given(mutated())
@example(FLOAT_TIFF_FULL_RANGE)
def test_mutated_photos_decode_or_refuse(
    pillow_warnings: Literal["ignore", "error"], data: bytes
) -> None:
    """As in production, where Pillow's warnings (corrupt EXIF, odd TIFF tags) do not raise,
    and under -W error, where a warning becomes an exception in the middle of a decode."""
    with warnings.catch_warnings():
        warnings.simplefilter(pillow_warnings)
        decodes_or_refuses(data)


@pytest.mark.timeout(60, method="thread")  # a hung decode ends the run, loudly
@BOUNDED
@given(st.binary(max_size=2048))
def test_random_bytes_decode_or_refuse(data: bytes) -> None:
    decodes_or_refuses(data)
