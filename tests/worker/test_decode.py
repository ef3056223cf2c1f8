"""decode_image: every error code, odd pixel mode and EXIF orientation, and the JPEG draft."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from tests import images
from worker.decode import decode_image
from worker.errors import ErrorCode, ImageError

MAX_PIXELS = 50_000_000


def code_of(data: bytes, **kw: int) -> ErrorCode:
    with pytest.raises(ImageError) as info:
        decode_image(data, kw.pop("max_pixels", MAX_PIXELS), **kw)
    return info.value.code


def rgb(data: bytes, **kw: int) -> np.ndarray:
    img = decode_image(data, MAX_PIXELS, **kw)
    assert img.mode == "RGB"
    arr = np.asarray(img)
    assert arr.dtype == np.uint8 and arr.shape == (img.height, img.width, 3)
    return arr


# --- error codes ------------------------------------------------------------------------


def test_empty_bytes() -> None:
    assert code_of(b"") == ErrorCode.EMPTY_FILE


@pytest.mark.parametrize(
    "data", [images.not_an_image(), b"\x00" * 100, b"GIF89a", b"<svg xmlns='x'></svg>"]
)
def test_not_an_image(data: bytes) -> None:
    assert code_of(data) == ErrorCode.NOT_AN_IMAGE


def test_formats_outside_the_photo_list_are_refused() -> None:
    """EPS would hand the file to Ghostscript; ICO/PCX/... are just attack surface."""
    buf = BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "PCX")
    assert code_of(buf.getvalue()) == ErrorCode.NOT_AN_IMAGE


@pytest.mark.parametrize("data", [images.truncated_jpeg(), images.truncated_png()])
def test_truncated(data: bytes) -> None:
    assert code_of(data) == ErrorCode.TRUNCATED_IMAGE


def test_truncated_does_not_flip_pillow_global() -> None:
    from PIL import ImageFile

    code_of(images.truncated_jpeg())
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bomb_is_refused_from_the_header_without_decoding() -> None:
    bomb = images.bomb_png(30000, 30000)
    assert len(bomb) < 10_000  # the claim is huge, the file is not
    started = time.perf_counter()
    assert code_of(bomb) == ErrorCode.TOO_MANY_PIXELS
    # decoding would allocate 900 MB first; refusing costs a header parse
    assert time.perf_counter() - started < 0.5


def test_pixel_limit_is_the_callers() -> None:
    data = images.png(100, 100)
    assert code_of(data, max_pixels=9_999) == ErrorCode.TOO_MANY_PIXELS
    assert decode_image(data, max_pixels=10_000).size == (100, 100)


def test_pillows_own_bomb_check_maps_to_too_many_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should anything re-enable PIL's global limit, its error and warning (raised as an
    exception under -W error) still become TOO_MANY_PIXELS, not a crash."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert code_of(images.png(40, 40)) == ErrorCode.TOO_MANY_PIXELS  # 1600: warning
    assert code_of(images.png(100, 100)) == ErrorCode.TOO_MANY_PIXELS  # 10000: error


@pytest.mark.parametrize(
    ("data", "min_side"),
    [(images.tiny_1x1(), 16), (images.png(15, 200), 16), (images.jpeg(300, 40), 41)],
)
def test_too_small(data: bytes, min_side: int) -> None:
    assert code_of(data, min_side=min_side) == ErrorCode.IMAGE_TOO_SMALL


# --- pixel modes ------------------------------------------------------------------------


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


# --- orientation and draft --------------------------------------------------------------


def test_exif_rotated_photo_comes_out_upright() -> None:
    data = images.exif_rotated_jpeg(48, 64)
    with Image.open(BytesIO(data)) as raw:
        assert raw.size == (64, 48)  # stored sideways
    arr = rgb(data).astype(int)
    assert arr.shape == (64, 48, 3)
    assert arr[:28].mean() > 230 and arr[36:].mean() < 25  # bright top, dark bottom


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(orientation: int) -> None:
    """Mirrored (2, 4, 5, 7) and rotated (3, 6, 8) photos: the bright quadrant ends top-left."""
    arr = rgb(images.exif_oriented_jpeg(orientation, 48, 64)).astype(int)
    assert arr.shape == (64, 48, 3)
    quadrants = [arr[:32, :24], arr[:32, 24:], arr[32:, :24], arr[32:, 24:]]
    means = [q[4:-4, 4:-4].mean() for q in quadrants]  # away from JPEG ringing at the edges
    assert means[0] > 230 and max(means[1:]) < 25, means


@pytest.mark.parametrize(("w", "h"), [(2000, 1500), (1500, 2000), (4000, 900)])
def test_large_jpeg_is_drafted_but_never_below_target(w: int, h: int) -> None:
    img = decode_image(images.jpeg(w, h, pattern="gradient", quality=75), MAX_PIXELS)
    assert img.mode == "RGB"
    assert min(img.size) >= 224
    assert img.width < w and img.height < h
    assert abs(img.width / img.height - w / h) < 0.02  # scaled, not cropped


def test_draft_target_is_configurable() -> None:
    img = decode_image(images.jpeg(2000, 1500, pattern="gradient"), MAX_PIXELS, target=1000)
    assert img.size == (2000, 1500)  # a 1/2 scale would leave the short side under 1000


def test_png_is_not_resized() -> None:
    assert decode_image(images.png(600, 400), MAX_PIXELS).size == (600, 400)


def test_concurrent_decodes_agree() -> None:
    blobs = [images.jpeg(300 + i, 240, pattern="noise") for i in range(8)] * 4
    expected = [np.asarray(decode_image(b, MAX_PIXELS)) for b in blobs[:8]] * 4
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda b: np.asarray(decode_image(b, MAX_PIXELS)), blobs))
    assert all((r == e).all() for r, e in zip(results, expected, strict=True))
