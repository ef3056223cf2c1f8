"""Image fixtures built in code: valid, odd modes, EXIF-rotated, truncated, bombs, not images."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from typing import Literal

import numpy as np
from PIL import Image

Pattern = Literal["solid", "gradient", "noise"]
ORIENTATION = 0x0112  # EXIF tag
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pixels(w: int, h: int, color: tuple[int, int, int], pattern: Pattern) -> Image.Image:
    if pattern == "solid":
        return Image.new("RGB", (w, h), color)
    if pattern == "gradient":
        x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
        y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
        base = np.asarray(color, dtype=np.float32)[None, None, :]
        arr = (x * 0.5 + y * 0.5 + base) % 256
        return Image.fromarray(arr.astype(np.uint8), "RGB")
    rng = np.random.default_rng(w * 7919 + h)  # deterministic per size
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _save(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg(
    w: int = 64,
    h: int = 48,
    color: tuple[int, int, int] = (180, 120, 60),
    pattern: Pattern = "solid",
    quality: int = 90,
    progressive: bool = False,
) -> bytes:
    return _save(_pixels(w, h, color, pattern), "JPEG", quality=quality, progressive=progressive)


def png(
    w: int = 64,
    h: int = 48,
    color: tuple[int, int, int] = (180, 120, 60),
    pattern: Pattern = "solid",
) -> bytes:
    return _save(_pixels(w, h, color, pattern), "PNG")


def truncated_jpeg(w: int = 256, h: int = 256) -> bytes:
    """A noisy JPEG cut in half: the header is fine, the scan data is not all there."""
    data = jpeg(w, h, pattern="noise")
    return data[: len(data) // 2]


def truncated_png(w: int = 128, h: int = 128) -> bytes:
    data = png(w, h, pattern="noise")
    return data[: len(data) // 2]


def not_an_image() -> bytes:
    return b"%PDF-1.7\nthis is a document, not a photo of concrete\n" * 8


def cmyk_jpeg(w: int = 64, h: int = 48) -> bytes:
    return _save(Image.new("CMYK", (w, h), (0, 200, 200, 0)), "JPEG")  # red-ish


def grayscale_png(w: int = 64, h: int = 48, value: int = 128) -> bytes:
    return _save(Image.new("L", (w, h), value), "PNG")


def bilevel_png(w: int = 64, h: int = 48) -> bytes:
    return _save(Image.new("1", (w, h), 1), "PNG")


def png16(w: int = 64, h: int = 48) -> bytes:
    """16-bit greyscale, a horizontal ramp over the whole 0..65535 range."""
    ramp = np.linspace(0, 65535, w, dtype=np.float64).round().astype(np.uint16)
    img = Image.fromarray(np.tile(ramp, (h, 1)))
    assert img.mode.startswith("I;16")
    return _save(img, "PNG")


def tiff_int32(w: int = 64, h: int = 48, compression: str = "raw") -> bytes:
    """Mode I (32-bit signed) holding 16-bit-range values, as scientific cameras write."""
    ramp = np.linspace(0, 65535, w).round().astype(np.int32)
    return _save(Image.fromarray(np.tile(ramp, (h, 1))), "TIFF", compression=compression)


def tiff_float(w: int = 64, h: int = 48, compression: str = "raw") -> bytes:
    """Mode F holding 0..1 floats."""
    ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)
    return _save(Image.fromarray(np.tile(ramp, (h, 1))), "TIFF", compression=compression)


def palette_png(w: int = 64, h: int = 48, transparent: bool = False) -> bytes:
    """Left half palette index 1 (green), right half index 0 (blue, or transparent)."""
    img = Image.new("P", (w, h), 0)
    img.putpalette([0, 0, 255, 0, 255, 0] + [0, 0, 0] * 254)
    img.paste(1, (0, 0, w // 2, h))
    return _save(img, "PNG", transparency=0) if transparent else _save(img, "PNG")


def rgba_png(w: int = 64, h: int = 48) -> bytes:
    """Left half opaque red, right half fully transparent black."""
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, w // 2, h))
    return _save(img, "PNG")


def bmp(w: int = 32, h: int = 32) -> bytes:
    return _save(Image.new("RGB", (w, h), (1, 2, 3)), "BMP")


def gif(w: int = 32, h: int = 32) -> bytes:
    return _save(Image.new("P", (w, h), 1), "GIF")


def la_png(w: int = 64, h: int = 48) -> bytes:
    """Grey + alpha: top half opaque dark grey, bottom half transparent."""
    img = Image.new("LA", (w, h), (0, 0))
    img.paste((40, 255), (0, 0, w, h // 2))
    return _save(img, "PNG")


def exif_rotated_jpeg(w: int = 48, h: int = 64) -> bytes:
    """Upright it is w x h with a white top half and black bottom half.

    Stored sideways (h x w, bright half on the left) with EXIF orientation 6, which
    tells viewers to rotate 90 degrees clockwise; without the transpose the decoded
    image is h x w, and rotating the wrong way puts the bright half at the bottom.
    """
    upright = Image.new("RGB", (w, h), (0, 0, 0))
    upright.paste((255, 255, 255), (0, 0, w, h // 2))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return _save(stored, "JPEG", quality=95, exif=exif.tobytes())


# What exif_transpose does for each orientation, so a builder can store the inverse.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
}


def exif_oriented_jpeg(orientation: int, w: int = 48, h: int = 64) -> bytes:
    """Upright it is w x h, white in the top-left quadrant and black elsewhere.

    Stored as a camera with EXIF `orientation` (1..8) would store it, so only a decoder
    that applies that orientation gets the bright quadrant back to the top left; every
    wrong transform puts it in another corner (the quadrant makes all eight distinct).
    """
    upright = Image.new("RGB", (w, h), (0, 0, 0))
    upright.paste((255, 255, 255), (0, 0, w // 2, h // 2))
    stored = upright
    if orientation != 1:
        op = _TRANSPOSE[orientation]
        stored = upright.transpose(_INVERSE.get(op, op))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return _save(stored, "JPEG", quality=95, exif=exif.tobytes())


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(w: int = 30000, h: int = 30000) -> bytes:
    """A 1-bit PNG whose header claims w x h but whose file is a few hundred bytes.

    Only the first row is in the IDAT: decoding would allocate w*h bytes before
    finding the data short, which is exactly what the pixel limit must prevent.
    """
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((w + 7) // 8)
    return (
        PNG_MAGIC
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(row, 9))
        + _chunk(b"IEND", b"")
    )


def png_raw(w: int, h: int, color_type: int, bit_depth: int, samples: np.ndarray) -> bytes:
    """A PNG written by hand, for layouts Pillow cannot save (16-bit grey + alpha).

    `samples` is (h, w, channels) of sample values; every row gets filter 0 (none).
    """
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = samples.astype(dtype).reshape(h, -1).view(np.uint8)
    raw = np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return (
        PNG_MAGIC
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


def la16_png(w: int = 64, h: int = 48) -> bytes:
    """16-bit grey + alpha: a grey ramp, top half opaque, bottom half transparent."""
    grey = np.tile(np.linspace(0, 65535, w).round().astype(np.uint16), (h, 1))
    alpha = np.zeros((h, w), np.uint16)
    alpha[: h // 2] = 65535
    return png_raw(w, h, 4, 16, np.stack([grey, alpha], axis=-1))


def rgba16_png(w: int = 64, h: int = 48) -> bytes:
    """16-bit RGBA: a red ramp, left half opaque, right half transparent."""
    red = np.tile(np.linspace(0, 65535, w).round().astype(np.uint16), (h, 1))
    alpha = np.zeros((h, w), np.uint16)
    alpha[:, : w // 2] = 65535
    zero = np.zeros((h, w), np.uint16)
    return png_raw(w, h, 6, 16, np.stack([red, zero, zero, alpha], axis=-1))


_SHORT, _LONG = 3, 4
_TIFF_COUNTS = {273: 279, 324: 325}  # strip/tile offsets -> their byte counts


def tiff_raw(
    tags: dict[int, tuple[int, list[int]]], chunks: list[bytes], offsets_tag: int
) -> bytes:
    """A little-endian TIFF written by hand, for layouts Pillow cannot save (tiles).

    `tags` maps tag -> (type, values); the offsets and byte counts of `chunks` (strips or
    tiles) are filled in as `offsets_tag` (273 or 324) and its byte-count tag.
    """
    tags = {**tags, offsets_tag: (_LONG, [0] * len(chunks))}
    tags[_TIFF_COUNTS[offsets_tag]] = (_LONG, [len(c) for c in chunks])
    ifd_end = 8 + 2 + 12 * len(tags) + 4
    spill = ifd_end + sum(4 * len(v) for _, v in tags.values() if 4 * len(v) > 4)
    tags[offsets_tag] = (_LONG, [spill + sum(map(len, chunks[:i])) for i in range(len(chunks))])
    entries, extra = b"", b""
    for tag, (kind, values) in sorted(tags.items()):
        body = struct.pack(f"<{len(values)}{'H' if kind == _SHORT else 'I'}", *values)
        if len(body) > 4:
            entries += struct.pack("<HHII", tag, kind, len(values), ifd_end + len(extra))
            extra += body.ljust(4 * len(values), b"\0")
        else:
            entries += struct.pack("<HHI", tag, kind, len(values)) + body.ljust(4, b"\0")
    ifd = struct.pack("<H", len(tags)) + entries + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + extra + b"".join(chunks)


def _grey_tags(w: int, h: int) -> dict[int, tuple[int, list[int]]]:
    """8-bit greyscale, deflate-compressed."""
    return {
        256: (_LONG, [w]),
        257: (_LONG, [h]),
        258: (_SHORT, [8]),
        259: (_SHORT, [8]),  # Adobe deflate: decoded by libtiff
        262: (_SHORT, [1]),  # black is zero
        277: (_SHORT, [1]),
    }


def tiled_tiff(w: int = 40, h: int = 32, tile: int = 16) -> bytes:
    """A valid tiled, deflate-compressed greyscale TIFF holding a diagonal ramp."""
    ramp = ((np.arange(h)[:, None] + np.arange(w)[None, :]) * 4 % 256).astype(np.uint8)
    across, down = -(-w // tile), -(-h // tile)
    padded = np.zeros((down * tile, across * tile), np.uint8)
    padded[:h, :w] = ramp
    tiles = [
        zlib.compress(padded[y : y + tile, x : x + tile].tobytes())
        for y in range(0, down * tile, tile)
        for x in range(0, across * tile, tile)
    ]
    tags = {**_grey_tags(w, h), 322: (_LONG, [tile]), 323: (_LONG, [tile])}
    return tiff_raw(tags, tiles, 324)


def tiled_tiff_bomb(w: int = 64, h: int = 64, tile: int = 46336) -> bytes:
    """A w x h TIFF whose one deflate tile claims tile x tile pixels, in a few hundred bytes.

    libtiff allocates (and zero-fills) a whole tile before decoding it: 46336 x 46336
    is 2 GiB for a 64 x 64 image, the largest tile under Pillow's INT_MAX check.
    """
    tags = {**_grey_tags(w, h), 322: (_LONG, [tile]), 323: (_LONG, [tile])}
    return tiff_raw(tags, [zlib.compress(b"\0" * 64)], 324)


def tiny_1x1() -> bytes:
    return _save(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG")
