"""decode_image reads only the formats it is given; the CRACKQ_IMAGE_FORMATS setting."""

from __future__ import annotations

import typing
from io import BytesIO

import pytest
from PIL import Image
from pydantic import ValidationError

from harness import images
from models.formats import CAMERA_FORMATS, PHOTO_FORMAT_NAMES
from tests.worker.decoding import MAX_PIXELS
from worker.decode import decode_image
from worker.errors import ErrorCode, ImageError
from worker.settings import Settings


@pytest.mark.parametrize(
    ("name", "data"), [("BMP", images.bmp()), ("GIF", images.gif())], ids=["BMP", "GIF"]
)
def test_bmp_and_gif_only_when_configured(name: str, data: bytes) -> None:
    with pytest.raises(ImageError) as info:
        decode_image(data, MAX_PIXELS)
    assert info.value.code == ErrorCode.NOT_AN_IMAGE
    assert name in info.value.message and "CRACKQ_IMAGE_FORMATS" in info.value.message
    assert decode_image(data, MAX_PIXELS, formats=(name,)).size == (32, 32)


def test_formats_are_the_callers() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(images.png(), MAX_PIXELS, formats=("JPEG", "TIFF"))
    assert info.value.code == ErrorCode.NOT_AN_IMAGE and "PNG is not" in info.value.message
    with pytest.raises(ValueError, match="HEIC"):
        decode_image(images.png(), MAX_PIXELS, formats=("PNG", "HEIC"))


def test_jpeg_includes_the_multi_picture_jpegs_phones_write() -> None:
    frames = [Image.new("RGB", (64, 48), (200, 0, 0)), Image.new("RGB", (32, 24))]
    buf = BytesIO()
    frames[0].save(buf, "MPO", save_all=True, append_images=frames[1:])
    assert decode_image(buf.getvalue(), MAX_PIXELS, formats=("JPEG",)).size == (64, 48)


def test_image_formats_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    field = Settings.model_fields["image_formats"]
    (literal,) = typing.get_args(field.annotation)
    assert typing.get_args(literal) == PHOTO_FORMAT_NAMES  # one list, named twice
    assert Settings().image_formats == list(CAMERA_FORMATS)
    monkeypatch.setenv("CRACKQ_IMAGE_FORMATS", "jpeg, png,GIF")
    assert Settings().image_formats == ["JPEG", "PNG", "GIF"]
    monkeypatch.setenv("CRACKQ_IMAGE_FORMATS", '["TIFF"]')
    assert Settings().image_formats == ["TIFF"]
    for bad in ("JPEG,HEIC", "EPS", ""):
        monkeypatch.setenv("CRACKQ_IMAGE_FORMATS", bad)
        with pytest.raises(ValidationError, match="image_formats"):
            Settings()
