"""decode_image: every error code, odd pixel mode, format and EXIF orientation, the JPEG
draft, and the memory a hostile header can make it take (measured in a child process)."""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import time
import tracemalloc
import typing
import warnings
import zlib
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from tests import images
from worker.decode import CAMERA_FORMATS, SUPPORTED_FORMATS, decode_image
from worker.errors import ErrorCode, ImageError
from worker.settings import Settings

MAX_PIXELS = 50_000_000
ROOT = Path(__file__).resolve().parents[2]


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


def test_16_bit_with_alpha_is_reduced_and_composited_onto_white() -> None:
    grey = rgb(images.la16_png())
    assert (grey[24:] == 255).all() and grey[0, 0, 0] == 0 and grey[0, -1, 0] == 255
    assert (np.diff(grey[0, :, 0].astype(int)) >= 0).all()
    red = rgb(images.rgba16_png())
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


# --- formats ----------------------------------------------------------------------------


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
    assert typing.get_args(literal) == SUPPORTED_FORMATS  # one list, named twice
    assert Settings().image_formats == list(CAMERA_FORMATS)
    monkeypatch.setenv("CRACKQ_IMAGE_FORMATS", "jpeg, png,GIF")
    assert Settings().image_formats == ["JPEG", "PNG", "GIF"]
    monkeypatch.setenv("CRACKQ_IMAGE_FORMATS", '["TIFF"]')
    assert Settings().image_formats == ["TIFF"]
    for bad in ("JPEG,HEIC", "EPS", ""):
        monkeypatch.setenv("CRACKQ_IMAGE_FORMATS", bad)
        with pytest.raises(ValidationError, match="image_formats"):
            Settings()


# --- memory budget ----------------------------------------------------------------------


def test_tiled_tiff_bomb_is_refused_from_the_header() -> None:
    """libtiff allocated and zero-filled a 2 GiB tile for this 146-byte 64x64 file."""
    bomb = images.tiled_tiff_bomb()
    assert len(bomb) < 300
    started = time.perf_counter()
    with pytest.raises(ImageError) as info:
        decode_image(bomb, MAX_PIXELS)
    assert info.value.code == ErrorCode.TOO_MANY_PIXELS and "tiles" in info.value.message
    assert time.perf_counter() - started < 0.5  # the decode took seconds, touching 2 GiB


@pytest.mark.parametrize(("w", "h", "tile"), [(40, 32, 16), (100, 30, 256), (64, 64, 1024)])
def test_tiles_overhanging_the_image_still_decode(w: int, h: int, tile: int) -> None:
    arr = rgb(images.tiled_tiff(w, h, tile))
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
    data = images.tiff_raw(tags, [zlib.compress(samples.tobytes())], 273)
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

RSS_CAP = 2_000_000
RSS_BUDGET = 4 * 3 * RSS_CAP
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="peak RSS is read from Linux /proc"
)


class DecodeProbe:
    """A child process that decodes what it is sent and answers (outcome, peak growth).

    The outcome is ("decoded", mode, size), ("refused", code, message) or, for a bug,
    ("crashed", repr). glibc's mmap threshold is pinned so large buffers are mapped and
    unmapped per decode, and the peak is reset before each one, so the growth is what
    that decode touched.
    """

    def __enter__(self) -> DecodeProbe:
        self._start()
        return self

    def _start(self) -> None:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONWARNINGS": "ignore"}
        env.pop("LD_PRELOAD", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.worker.test_decode"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # libtiff's warnings about hostile tags
        )

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)

    def decode(
        self, data: bytes, max_pixels: int, formats: Collection[str] = CAMERA_FORMATS
    ) -> tuple[tuple[object, ...], int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            pickle.dump((data, max_pixels, tuple(formats)), self.proc.stdin)
            self.proc.stdin.flush()
            return typing.cast(tuple[tuple[object, ...], int], pickle.load(self.proc.stdout))
        except (EOFError, BrokenPipeError):  # a C decoder crashed: a fresh child for the next
            status = self.proc.wait(10)
            self._start()
            raise AssertionError(f"the decode killed its process (exit {status})") from None


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _serve() -> None:
    """DecodeProbe's child: one pickled request in, one pickled answer out, until EOF."""
    import ctypes

    warnings.simplefilter("ignore")  # as in production: Pillow warns about odd files
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing a library prints may corrupt the answers
    warm = [images.jpeg(), images.rgba_png(), images.tiled_tiff(), images.tiff_float()]
    for data in warm:  # first use imports plugins and fills caches
        decode_image(data, RSS_CAP, formats=SUPPORTED_FORMATS)
    while True:
        try:
            data, max_pixels, formats = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        gc.collect()
        if trim is not None:
            trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        base = _status_bytes("VmRSS")
        outcome: tuple[object, ...]
        try:
            img = decode_image(data, max_pixels, formats=formats)
            outcome = ("decoded", img.mode, img.size)
        except ImageError as exc:
            outcome = ("refused", exc.code.value, exc.message)
        except Exception as exc:
            outcome = ("crashed", repr(exc))
        growth = _status_bytes("VmHWM") - base
        img = None
        pickle.dump((outcome, growth), answers)
        answers.flush()


W, H = 2000, 1000  # the cap exactly
RSS_CASES = {
    "tiled TIFF bomb": images.tiled_tiff_bomb,
    "huge PNG header": lambda: images.bomb_png(30000, 30000),
    "16-bit PNG": lambda: images.png16(W, H),
    "16-bit grey+alpha PNG": lambda: images.la16_png(W, H),
    "16-bit RGBA PNG": lambda: images.rgba16_png(W, H),
    "I TIFF": lambda: images.tiff_int32(W, H),
    "I TIFF, deflate (libtiff)": lambda: images.tiff_int32(W, H, "tiff_adobe_deflate"),
    "F TIFF": lambda: images.tiff_float(W, H),
    "RGBA PNG": lambda: images.rgba_png(W, H),
    "palette PNG with transparency": lambda: images.palette_png(W, H, transparent=True),
    "progressive JPEG": lambda: images.jpeg(W, H, pattern="gradient", progressive=True),
    "tiled TIFF, 1024 tiles": lambda: images.tiled_tiff(W, H, 1024),
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


if __name__ == "__main__":
    _serve()
