"""decode_image in tests: the code a refusal carries, and the RGB pixels of a decode."""

from __future__ import annotations

import numpy as np
import pytest

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
