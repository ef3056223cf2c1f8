"""Image bytes -> upright 8-bit RGB PIL image, refusing bombs, corrupt files and tiny images."""

from __future__ import annotations

import logging
from collections.abc import Collection
from io import BytesIO

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile
from PIL.TiffImagePlugin import BITSPERSAMPLE, ROWSPERSTRIP, TILELENGTH, TILEWIDTH, TiffImageFile

from models.formats import CAMERA_FORMATS, PHOTO_FORMAT_NAMES
from worker.errors import ErrorCode, ImageError
from worker.pixels import to_rgb

log = logging.getLogger(__name__)

# decode_image enforces its own max_pixels from the header, before any pixel is decoded.
# PIL's process-wide limit would add a second threshold unrelated to the configured one,
# reported as a warning (an exception under -W error) from whichever thread trips it.
Image.MAX_IMAGE_PIXELS = None
# Register every plugin now: lazy registration inside Image.open from several decode
# threads at once would race.
Image.init()

# Photo formats only: every other Pillow plugin is attack surface (and EPS would run
# Ghostscript). Drones and industrial cameras write TIFF; BMP and GIF only when
# configured (CRACKQ_IMAGE_FORMATS, which names these same formats): models/formats.py.

# Decoder memory, in bytes per pixel of the cap: the decoded image plus the largest
# buffer its decoder fills at once may take as much as two RGB images at the cap (Pillow
# keeps RGB in 4 bytes a pixel). Converting to RGB then holds the image and its RGB copy,
# the same again, so a decode peaks near 8 bytes a pixel of the cap, whatever the file.
RGB_BYTES = 4
DECODE_BUDGET = 2 * RGB_BYTES
# A region (TIFF tile) may overhang the image, but not by this much more than its area:
# libtiff allocates a whole tile however small the image (a 46336^2 tile is 2 GiB).
REGION_SLACK = 4
REGION_FLOOR = 1024 * 1024


def decode_image(
    data: bytes,
    max_pixels: int,
    min_side: int = 16,
    target: int | None = 224,
    formats: Collection[str] = CAMERA_FORMATS,
) -> Image.Image:
    """Decode `data` into an upright RGB image, or raise ImageError saying why not.

    Only `formats` are opened (names from PHOTO_FORMAT_NAMES; JPEG includes MPO, the
    multi-picture JPEG phones write). Sizes, decoder regions and pixel modes are checked
    from the header before any decoder allocates. JPEGs are decoded at a reduced DCT
    scale when that keeps both sides >= `target`, so a 12-megapixel photo costs about
    1/64 of a full decode; `target=None` decodes every pixel (crack maps). Thread-safe:
    it touches no shared state.
    """
    img = open_image(data, max_pixels, min_side, formats)
    return finish_decode(img, max_pixels, target, min_side)


def open_image(
    data: bytes,
    max_pixels: int,
    min_side: int = 16,
    formats: Collection[str] = CAMERA_FORMATS,
) -> ImageFile.ImageFile:
    """The header of `data` opened and checked (size, decoder budget); no pixel decoded yet."""
    if not data:
        raise ImageError(ErrorCode.EMPTY_FILE, "zero bytes")
    allowed = _plugins(formats)
    try:
        img = Image.open(BytesIO(data), formats=allowed)
    except UnidentifiedImageError as exc:
        raise ImageError(ErrorCode.NOT_AN_IMAGE, _unrecognised(data, allowed)) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(ErrorCode.TOO_MANY_PIXELS, str(exc)) from exc
    except Exception as exc:  # plugins raise anything on a hostile header
        raise ImageError(ErrorCode.NOT_AN_IMAGE, f"unreadable header: {exc!r}") from exc
    _check_size(img.size, max_pixels, min_side)
    _check_budget(img, max_pixels)
    return img


def finish_decode(
    img: ImageFile.ImageFile, max_pixels: int, target: int | None, min_side: int = 16
) -> Image.Image:
    """The pixels of an image `open_image` checked: upright 8-bit RGB (see decode_image)."""
    if isinstance(img, JpegImageFile) and target is not None:
        img.draft("RGB", (target, target))
    try:
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(ErrorCode.TOO_MANY_PIXELS, str(exc)) from exc
    except Exception as exc:  # "image file is truncated", zlib/struct errors, ...
        raise ImageError(ErrorCode.TRUNCATED_IMAGE, f"corrupt or truncated: {exc}") from exc
    # some formats (GIF frames) settle their size only while loading
    _check_size(img.size, max_pixels, min_side)
    # a plain image frees libwebp's canvases and the frame copy before converting
    image = img._new(img.im) if img.format == "WEBP" else img
    _make_upright(image)
    return to_rgb(image)


def _plugins(formats: Collection[str]) -> tuple[str, ...]:
    unknown = sorted(set(formats) - set(PHOTO_FORMAT_NAMES))
    if unknown:
        raise ValueError(f"unknown image formats {unknown}; known: {PHOTO_FORMAT_NAMES}")
    names = [*formats, "MPO"] if "JPEG" in formats else formats
    return tuple(f for f in PHOTO_FORMAT_NAMES if f in names and f in Image.OPEN)


def _unrecognised(data: bytes, formats: Collection[str]) -> str:
    """Name a supported format left out of `formats`, from its magic number alone."""
    for name in PHOTO_FORMAT_NAMES:
        accept = Image.OPEN[name][1] if name in Image.OPEN else None
        if name not in formats and accept is not None and accept(data[:16]):
            return (
                f"{name} is not among the accepted image formats ({', '.join(formats)}); "
                "CRACKQ_IMAGE_FORMATS lists them"
            )
    return "not a recognised image format"


def _check_size(size: tuple[int, int], max_pixels: int, min_side: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(ErrorCode.TOO_MANY_PIXELS, f"{width}x{height} is over {max_pixels} pixels")
    if min(width, height) < min_side:
        raise ImageError(ErrorCode.IMAGE_TOO_SMALL, f"{width}x{height} has a side under {min_side}")


def _check_budget(img: ImageFile.ImageFile, max_pixels: int) -> None:
    """Refuse, from the header, a decode whose buffers would outgrow the pixel cap.

    Pillow's own decoders write each tile straight into the image through a one-row
    buffer; libtiff (compressed TIFF) first decodes a whole tile or strip into a buffer
    of its own, sized by the file's tags, not by the image.
    """
    width, height = img.size
    area = width * height
    extents = [t[1] for t in img.tile if t[1] is not None]
    regions = [(x1 - x0) * (y1 - y0) for (x0, y0, x1, y1) in extents]
    buffer = 0
    if isinstance(img, TiffImageFile) and any(t[0] == "libtiff" for t in img.tile):
        tile = (img.tag_v2.get(TILEWIDTH), img.tag_v2.get(TILELENGTH))
        rows = img.tag_v2.get(ROWSPERSTRIP)
        if isinstance(tile[0], int) and isinstance(tile[1], int):
            region = tile[0] * tile[1]
        else:  # strips: libtiff clips the rows of a strip to the image
            region = width * (min(rows, height) if isinstance(rows, int) else height)
        regions.append(region)
        buffer = region * max(-(-_sample_bits(img) // 8), _pixel_bytes(img.mode))
    elif img.format == "WEBP":  # libwebp keeps two RGBA canvases; Pillow copies the frame out
        buffer = 3 * RGB_BYTES * area
    largest = max(regions, default=0)
    if largest > max(REGION_SLACK * area, REGION_FLOOR):
        raise ImageError(
            ErrorCode.TOO_MANY_PIXELS,
            f"{width}x{height} image decoded in regions of {largest} pixels (tiles far "
            "larger than the image)",
        )
    need = area * _pixel_bytes(img.mode) + buffer
    if need > DECODE_BUDGET * max_pixels:
        raise ImageError(
            ErrorCode.TOO_MANY_PIXELS,
            f"decoding {width}x{height} {img.mode} ({img.format}) needs {need >> 20} MiB, over "
            f"the {DECODE_BUDGET * max_pixels >> 20} MiB a {max_pixels}-pixel cap allows",
        )


def _sample_bits(img: TiffImageFile) -> int:
    bits = img.tag_v2.get(BITSPERSAMPLE, (1,))  # one value per sample
    values = bits if isinstance(bits, tuple) else (bits,)
    return sum(int(v) for v in values if isinstance(v, int))


def _pixel_bytes(mode: str) -> int:
    """Bytes a pixel of `mode` takes in Pillow's memory (multi-band modes pad to 4)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _make_upright(img: Image.Image) -> None:
    """Apply the EXIF orientation in place, so a photo taken sideways is classified upright."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception as exc:  # broken EXIF must not cost an otherwise good photo
        log.debug("ignoring unreadable EXIF orientation: %r", exc)
