"""decode_image applies the EXIF orientation and drafts large JPEGs, never below the target."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from harness import images
from tests.worker.decoding import MAX_PIXELS, rgb
from worker.decode import decode_image


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
