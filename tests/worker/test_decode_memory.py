"""The memory a decode may take: hostile headers refused up front, decoder buffers counted
against the cap, and each decode's peak RSS measured in a child process."""

from __future__ import annotations

import gc
import time
import tracemalloc
import zlib
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from harness import images, raw_images
from tests.worker.decode_probe import RSS_CAP, DecodeProbe, needs_proc
from tests.worker.decoding import MAX_PIXELS, code_of, rgb
from worker.decode import decode_image
from worker.errors import ErrorCode, ImageError


def test_tiled_tiff_bomb_is_refused_from_the_header() -> None:
    """libtiff allocated and zero-filled a 2 GiB tile for this 146-byte 64x64 file."""
    bomb = raw_images.tiled_tiff_bomb()
    assert len(bomb) < 300
    started = time.perf_counter()
    with pytest.raises(ImageError) as info:
        decode_image(bomb, MAX_PIXELS)
    assert info.value.code == ErrorCode.TOO_MANY_PIXELS and "tiles" in info.value.message
    assert time.perf_counter() - started < 0.5  # the decode took seconds, touching 2 GiB


@pytest.mark.parametrize(("w", "h", "tile"), [(40, 32, 16), (100, 30, 256), (64, 64, 1024)])
def test_tiles_overhanging_the_image_still_decode(w: int, h: int, tile: int) -> None:
    arr = rgb(raw_images.tiled_tiff(w, h, tile))
    assert arr.shape == (h, w, 3)
    assert arr[0, 0, 0] == 0 and arr[0, 1, 0] == 4 and arr[1, 0, 0] == 4  # the ramp


def test_decoder_buffers_count_against_the_cap() -> None:
    """A single-strip compressed TIFF is decoded by libtiff into a strip buffer beside the
    image; 16-bit RGB makes that 6 bytes a pixel, 10 with the image: over 8 at the cap."""
    w, h = 200, 100
    samples = np.full((h, w, 3), 40000, ">u2")
    tags = {
        256: (4, [w]),
        257: (4, [h]),
        258: (3, [16, 16, 16]),
        259: (3, [8]),
        262: (3, [2]),
        277: (3, [3]),
        278: (4, [h]),
    }
    data = raw_images.tiff_raw(tags, [zlib.compress(samples.tobytes())], 273)
    assert code_of(data, max_pixels=w * h) == ErrorCode.TOO_MANY_PIXELS
    assert decode_image(data, max_pixels=w * h * 5 // 4).size == (w, h)


def test_webp_pays_for_libwebps_canvases() -> None:
    """Pillow's WebP decoder holds two RGBA canvases and a copy of the frame beside the
    image: 31-41 MB at a 2-megapixel cap (over 4x its RGB size) before it was counted."""
    buf = BytesIO()
    Image.new("RGB", (200, 100), (90, 60, 30)).save(buf, "WEBP")
    assert code_of(buf.getvalue(), max_pixels=20_000) == ErrorCode.TOO_MANY_PIXELS
    assert rgb(buf.getvalue()).shape == (100, 200, 3)


@pytest.mark.parametrize(
    "data",
    [images.png16(1000, 1000), images.tiff_int32(1000, 1000), images.tiff_float(1000, 1000)],
    ids=["I;16", "I", "F"],
)
def test_wide_modes_are_never_widened_whole(data: bytes) -> None:
    """numpy's allocations are visible to tracemalloc (Pillow's are not): the old float64
    copies of a 1-megapixel image took 8 MB each."""
    gc.collect()
    tracemalloc.start()
    try:
        decode_image(data, MAX_PIXELS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * 1024 * 1024, peak


# --- measured peak memory ---------------------------------------------------------------
# Each decode runs in a child process that reads its own peak RSS from /proc: the cap's
# RGB size is 3 bytes a pixel, and no input may make a decode grow by more than 4x that.

RSS_BUDGET = 4 * 3 * RSS_CAP
W, H = 2000, 1000  # the cap exactly
RSS_CASES = {
    "tiled TIFF bomb": raw_images.tiled_tiff_bomb,
    "huge PNG header": lambda: raw_images.bomb_png(30000, 30000),
    "16-bit PNG": lambda: images.png16(W, H),
    "16-bit grey+alpha PNG": lambda: raw_images.la16_png(W, H),
    "16-bit RGBA PNG": lambda: raw_images.rgba16_png(W, H),
    "I TIFF": lambda: images.tiff_int32(W, H),
    "I TIFF, deflate (libtiff)": lambda: images.tiff_int32(W, H, "tiff_adobe_deflate"),
    "F TIFF": lambda: images.tiff_float(W, H),
    "RGBA PNG": lambda: images.rgba_png(W, H),
    "palette PNG with transparency": lambda: images.palette_png(W, H, transparent=True),
    "progressive JPEG": lambda: images.jpeg(W, H, pattern="gradient", progressive=True),
    "tiled TIFF, 1024 tiles": lambda: raw_images.tiled_tiff(W, H, 1024),
    "RGBA WEBP": lambda: _webp(images.rgba_png(W, H)),
    "RGBA WEBP, half the cap": lambda: _webp(images.rgba_png(1414, 707)),
}


def _webp(png: bytes) -> bytes:
    buf = BytesIO()
    Image.open(BytesIO(png)).save(buf, "WEBP")
    return buf.getvalue()


@needs_proc
@pytest.mark.parametrize("name", list(RSS_CASES))
def test_peak_memory_stays_within_4x_the_caps_rgb_size(name: str) -> None:
    data = RSS_CASES[name]()
    with DecodeProbe() as probe:
        outcome, growth = probe.decode(data, RSS_CAP)
    assert outcome[0] in ("decoded", "refused"), outcome
    assert growth < RSS_BUDGET, f"{name}: +{growth / 1e6:.1f} MB, {outcome}"
