"""A child process that decodes what it is sent and reports the peak memory each decode took."""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import typing
import warnings
from collections.abc import Collection
from pathlib import Path

import pytest

from harness import images, raw_images
from models.formats import CAMERA_FORMATS, PHOTO_FORMAT_NAMES
from worker.decode import decode_image
from worker.errors import ImageError

ROOT = Path(__file__).resolve().parents[2]
# the cap the child warms up with, and the one the memory tests decode under
RSS_CAP = 2_000_000
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
            [sys.executable, "-m", "tests.worker.decode_probe"],
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
    warm = [images.jpeg(), images.rgba_png(), raw_images.tiled_tiff(), images.tiff_float()]
    for data in warm:  # first use imports plugins and fills caches
        decode_image(data, RSS_CAP, formats=PHOTO_FORMAT_NAMES)
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


if __name__ == "__main__":
    _serve()
