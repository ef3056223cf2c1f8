"""decode_image refusals: empty, not an image, truncated, too many pixels, too small."""

from __future__ import annotations

import time
from io import BytesIO

import pytest
from PIL import Image

from harness import images, raw_images
from tests.worker.decoding import code_of
from worker.decode import decode_image
from worker.errors import ErrorCode


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
    bomb = raw_images.bomb_png(30000, 30000)
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
