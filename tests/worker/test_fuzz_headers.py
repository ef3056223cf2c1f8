"""Property: no rewritten PNG, TIFF or JPEG header makes a decode grow past the memory budget."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import event, example, given, target
from hypothesis import strategies as st

from harness import images, raw_images
from models.formats import PHOTO_FORMAT_NAMES
from tests.worker.decode_probe import DecodeProbe, needs_proc
from tests.worker.fuzzing import BOUNDED, DECODE_CODES, MAX_PIXELS, SEEDS, fix_png_crcs

# Sizes, tile and strip geometry, bit depths and sample layouts are rewritten in the PNG
# IHDR, the TIFF IFD and the JPEG SOF of small valid files; each result is decoded in a
# DecodeProbe child, which reports the decode's peak RSS growth (Pillow's and libtiff's
# buffers come from malloc, which tracemalloc does not see). Hypothesis is steered
# (`target`) towards the largest growth it can find.

HEADER_BUDGET = 4 * 3 * MAX_PIXELS  # 4x the cap's RGB size
HEADER_SEEDS = {
    "png": images.png(40, 32, pattern="gradient"),
    "png-1bit": images.bilevel_png(40, 32),
    "png-palette": images.palette_png(40, 32, transparent=True),
    "png-16": images.png16(40, 32),
    "png-la16": raw_images.la16_png(40, 32),
    "png-rgba16": raw_images.rgba16_png(40, 32),
    "tiff": SEEDS["tiff"],
    "tiff-deflate": SEEDS["tiff-deflate"],
    "tiff-tiled": raw_images.tiled_tiff(40, 32, 16),
    "tiff-float": images.tiff_float(40, 32, "tiff_adobe_deflate"),
    "tiff-int32": images.tiff_int32(40, 32),
    "jpeg": SEEDS["jpeg"],
    "jpeg-progressive": SEEDS["jpeg-progressive"],
}
SIDES = [0, 1, 15, 16, 17, 40, 1000, 1024, 4096, 30000, 46336, 65535, 65536, 0x7FFFFFFF]
BITS = [0, 1, 2, 4, 8, 12, 16, 24, 32, 64, 255]
TIFF_VALUES = {
    256: SIDES,  # ImageWidth
    257: SIDES,  # ImageLength
    258: BITS,  # BitsPerSample
    259: [1, 2, 3, 4, 5, 6, 7, 8, 32773, 32946, 34925, 50000, 50001],  # Compression
    262: [0, 1, 2, 3, 4, 5, 6, 8],  # Photometric
    277: [1, 2, 3, 4, 5, 255],  # SamplesPerPixel
    278: SIDES,  # RowsPerStrip
    284: [1, 2],  # PlanarConfiguration
    317: [1, 2, 3],  # Predictor
    322: SIDES,  # TileWidth
    323: SIDES,  # TileLength
    338: [0, 1, 2],  # ExtraSamples
    339: [1, 2, 3],  # SampleFormat
}


def _mutate_ihdr(draw: st.DrawFn, data: bytearray) -> None:
    field = draw(st.sampled_from(["width", "height", "depth", "colour", "interlace"]))
    if field in ("width", "height"):
        side = draw(st.sampled_from(SIDES) | st.integers(0, 0xFFFFFFFF))
        data[16 + 4 * (field == "height") : 20 + 4 * (field == "height")] = struct.pack(">I", side)
    elif field == "depth":
        data[24] = draw(st.sampled_from(BITS[:-1]))
    elif field == "colour":
        data[25] = draw(st.sampled_from([0, 2, 3, 4, 6]) | st.integers(0, 255))
    else:
        data[28] = draw(st.integers(0, 2))


def _zero_idat(data: bytearray) -> bytearray:
    """Replace the pixel data by zeros sized for the (mutated) header, so decoding runs to
    the end instead of stopping at the seed's short data; skipped past 8 MB."""
    w, h, depth, colour = struct.unpack(">IIBB", data[16:26])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    size = (1 + (w * channels * depth + 7) // 8) * h
    if size > 8 << 20:
        return data
    idat = zlib.compress(bytes(size), 1)
    body = b"IDAT" + idat
    chunk = struct.pack(">I", len(idat)) + body + struct.pack(">I", zlib.crc32(body))
    return (
        data[:33] + chunk + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    )


def _mutate_ifd(draw: st.DrawFn, data: bytearray) -> None:
    """Rewrite one entry of the first IFD: its value(s), its type, or its tag."""
    (ifd,) = struct.unpack("<I", data[4:8])  # the seeds are little-endian
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    pos = ifd + 2 + 12 * draw(st.integers(0, count - 1))
    tag, kind, n = struct.unpack("<HHI", data[pos : pos + 8])
    op = draw(st.sampled_from(["value", "value", "value", "type", "tag"]))
    if op == "tag":  # e.g. RowsPerStrip becomes TileWidth; duplicates included
        data[pos : pos + 2] = struct.pack("<H", draw(st.sampled_from(sorted(TIFF_VALUES))))
        return
    if op == "type":
        kind = draw(st.sampled_from([3, 4]))  # SHORT, LONG
        data[pos + 2 : pos + 4] = struct.pack("<H", kind)
    values = TIFF_VALUES.get(tag, SIDES)
    value = draw(st.sampled_from(values) | st.integers(0, 0xFFFFFFFF))
    fmt, width = ("<H", 2) if kind == 3 else ("<I", 4)
    value &= 0xFFFF if width == 2 else 0xFFFFFFFF
    if n * width <= 4:  # inline
        data[pos + 8 : pos + 8 + width] = struct.pack(fmt, value)
    else:  # every value at the offset (BitsPerSample of RGB)
        (at,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        for i in range(min(n, 16)):
            data[at + i * width : at + (i + 1) * width] = struct.pack(fmt, value)


def _mutate_sof(draw: st.DrawFn, data: bytearray) -> None:
    """Rewrite the frame header: size, precision, components or sampling factors."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            break
        pos += 2 + length
    else:
        return
    field = draw(st.sampled_from(["height", "width", "precision", "components", "sampling"]))
    if field in ("height", "width"):
        at = pos + 5 + 2 * (field == "width")
        data[at : at + 2] = struct.pack(">H", draw(st.sampled_from(SIDES)) & 0xFFFF)
    elif field == "precision":
        data[pos + 4] = draw(st.sampled_from([8, 12, 16, 0, 255]))
    elif field == "components":
        data[pos + 9] = draw(st.sampled_from([1, 3, 4, 0, 255]))
    else:
        comp = draw(st.integers(0, data[pos + 9] - 1)) if data[pos + 9] else 0
        data[pos + 11 + 3 * comp] = draw(st.integers(1, 4)) << 4 | draw(st.integers(1, 4))


@st.composite
def header_mutated(draw: st.DrawFn) -> bytes:
    """A small valid file after one to three header rewrites."""
    name = draw(st.sampled_from(sorted(HEADER_SEEDS)))
    data = bytearray(HEADER_SEEDS[name])
    mutate = _mutate_ihdr if name.startswith("png") else _mutate_sof
    mutate = _mutate_ifd if name.startswith("tiff") else mutate
    for _ in range(draw(st.integers(1, 3))):
        mutate(draw, data)
    if name.startswith("png"):
        data = fix_png_crcs(_zero_idat(data) if draw(st.booleans()) else data)
    return bytes(data)


@pytest.fixture(scope="module")
def probe() -> Iterator[DecodeProbe]:
    with DecodeProbe() as child:
        yield child


@needs_proc
@pytest.mark.timeout(300, method="thread")
@BOUNDED
@given(header_mutated())
@example(raw_images.tiled_tiff_bomb())  # issue 11: libtiff touched 2 GiB for these 146 bytes
def test_mutated_headers_decode_or_refuse_within_the_memory_budget(
    probe: DecodeProbe, data: bytes
) -> None:
    outcome, growth = probe.decode(data, MAX_PIXELS, PHOTO_FORMAT_NAMES)
    target(growth / 1e6, label="peak RSS growth (MB)")
    assert outcome[0] in ("decoded", "refused"), outcome
    if outcome[0] == "decoded":
        event("decoded")
        mode, (width, height) = outcome[1], outcome[2]
        assert mode == "RGB" and min(width, height) >= 16 and width * height <= MAX_PIXELS
    else:
        event(str(outcome[1]))  # the code's value
        assert outcome[1] in DECODE_CODES, outcome
    assert growth < HEADER_BUDGET, f"+{growth / 1e6:.1f} MB ({outcome}) over {HEADER_BUDGET}"
