"""Image files written byte by byte, for layouts Pillow cannot save: bombs, 16-bit alpha, tiles."""

from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_file(ihdr: bytes, idat: bytes) -> bytes:
    return PNG_MAGIC + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def bomb_png(w: int = 30000, h: int = 30000) -> bytes:
    """A 1-bit PNG whose header claims w x h but whose file is a few hundred bytes.

    Only the first row is in the IDAT: decoding would allocate w*h bytes before
    finding the data short, which is exactly what the pixel limit must prevent.
    """
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((w + 7) // 8)
    return _png_file(ihdr, zlib.compress(row, 9))


def png_raw(w: int, h: int, color_type: int, bit_depth: int, samples: np.ndarray) -> bytes:
    """A PNG written by hand, for layouts Pillow cannot save (16-bit grey + alpha).

    `samples` is (h, w, channels) of sample values; every row gets filter 0 (none).
    """
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = samples.astype(dtype).reshape(h, -1).view(np.uint8)
    raw = np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return _png_file(ihdr, zlib.compress(raw, 6))


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
