"""decode_image turns every pixel mode into 8-bit RGB: CMYK, grey, wide, palette, alpha."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from harness import images, raw_images
from tests.worker.decoding import rgb


def test_rgb_jpeg_keeps_its_colour() -> None:
    arr = rgb(images.jpeg(64, 48, color=(180, 120, 60)))
    assert arr.shape == (48, 64, 3)
    assert np.allclose(arr.reshape(-1, 3).mean(0), (180, 120, 60), atol=4)


def test_cmyk_jpeg() -> None:
    arr = rgb(images.cmyk_jpeg(64, 48))
    assert arr.shape == (48, 64, 3)
    r, g, b = arr.reshape(-1, 3).mean(0)
    assert r > 200 and g < 80 and b < 80  # CMYK (0, 200, 200, 0) is red


@pytest.mark.parametrize(
    ("data", "value"), [(images.grayscale_png(value=128), 128), (images.bilevel_png(), 255)]
)
def test_grey_and_bilevel(data: bytes, value: int) -> None:
    arr = rgb(data)
    assert arr.shape == (48, 64, 3) and (arr == value).all()


@pytest.mark.parametrize("data", [images.png16(), images.tiff_int32(), images.tiff_float()])
def test_wide_grey_is_scaled_not_clipped(data: bytes) -> None:
    """A ramp over the whole 16-bit (or 0..1 float) range stays a ramp over 0..255."""
    arr = rgb(data)
    assert arr.shape == (48, 64, 3)
    row = arr[0, :, 0].astype(int)
    assert row[0] <= 2 and row[-1] >= 253
    assert (np.diff(row) >= 0).all()  # monotonic, no wrap-around
    assert 100 < row.mean() < 155  # not all white, not all black


def test_float_image_spanning_the_whole_float32_range_stays_a_ramp() -> None:
    """Found by test_fuzz_decode: hi - lo overflowed float32, so half the ramp came out
    white (and under -W error decode_image raised RuntimeWarning instead of returning)."""
    ramp = np.linspace(-3e38, 3e38, 64, dtype=np.float32)
    buf = BytesIO()
    Image.fromarray(np.tile(ramp, (48, 1)), mode="F").save(buf, "TIFF")
    row = rgb(buf.getvalue())[0, :, 0].astype(int)
    assert row[0] <= 2 and row[-1] >= 253 and 100 < row.mean() < 155
    assert (np.diff(row) >= 0).all() and (np.diff(row) > 0).sum() > 50  # no white plateau


def test_palette() -> None:
    arr = rgb(images.palette_png())
    assert (arr[:, :32] == (0, 255, 0)).all() and (arr[:, 32:] == (0, 0, 255)).all()


def test_palette_transparency_becomes_white() -> None:
    arr = rgb(images.palette_png(transparent=True))
    assert (arr[:, :32] == (0, 255, 0)).all() and (arr[:, 32:] == 255).all()


def test_rgba_is_composited_onto_white() -> None:
    arr = rgb(images.rgba_png())
    assert (arr[:, :32] == (255, 0, 0)).all() and (arr[:, 32:] == 255).all()


def test_grey_alpha_is_composited_onto_white() -> None:
    arr = rgb(images.la_png())
    assert (arr[:24] == 40).all() and (arr[24:] == 255).all()


def test_16_bit_with_alpha_is_reduced_and_composited_onto_white() -> None:
    grey = rgb(raw_images.la16_png())
    assert (grey[24:] == 255).all() and grey[0, 0, 0] == 0 and grey[0, -1, 0] == 255
    assert (np.diff(grey[0, :, 0].astype(int)) >= 0).all()
    red = rgb(raw_images.rgba16_png())
    assert (red[:, 32:] == 255).all() and (red[:, :32, 1:] == 0).all()
    assert red[0, 0, 0] == 0 and red[0, 31, 0] > 120


def test_wide_grey_transparency_key_becomes_white() -> None:
    """A 16-bit PNG with a tRNS key used to go through the 8-bit RGBA convert, which
    clipped the whole ramp to white; now the ramp is scaled and only the key is white."""
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (48, 1))
    ramp[:, :8] = 1000  # the transparent colour
    buf = BytesIO()
    Image.fromarray(ramp).save(buf, "PNG", transparency=1000)
    row = rgb(buf.getvalue())[0, :, 0].astype(int)
    assert (row[:8] == 255).all()
    assert 100 < row[8:].mean() < 155 and row[8] <= 40 and (np.diff(row[8:]) >= 0).all()
