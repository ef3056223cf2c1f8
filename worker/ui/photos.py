"""Photos for the console: read through the worker's guarded readers, map drawn over, as JPEG."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from worker.overlay import read_overlay
from worker.settings import Settings
from worker.sources import SourceLimits

CACHED = 128  # encoded photos kept; a review page shows one and prefetches the next few


@dataclass(frozen=True)
class Shown:
    """What the browser gets: JPEG bytes, or why the photo cannot be shown."""

    jpeg: bytes | None
    error: str | None = None


class PhotoReader:
    """Reads a result's photo as a worker would (same roots, URL guard, size and pixel
    limits, formats), draws its crack map when it has one, scales it, keeps the last few."""

    def __init__(self, settings: Settings) -> None:
        self._limits = SourceLimits.from_settings(settings)
        self._max_pixels = settings.max_image_pixels
        self._formats = tuple(settings.image_formats)
        self._cache: OrderedDict[tuple[Any, ...], Shown] = OrderedDict()
        self._lock = threading.Lock()

    def show(
        self, ref: str, key: tuple[Any, ...], stored_map: dict[str, Any] | None, max_side: int
    ) -> Shown:
        """The photo at `ref`, at most `max_side` px, with `stored_map` drawn when given.

        `key` names this rendering (request id, model version, overlay, size) in the cache;
        a failure is cached too, so a broken reference is not fetched again and again.
        """
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        shown = self._render(ref, stored_map, max_side)
        with self._lock:
            self._cache[key] = shown
            while len(self._cache) > CACHED:
                self._cache.popitem(last=False)
        return shown

    def _render(self, ref: str, stored_map: dict[str, Any] | None, max_side: int) -> Shown:
        try:
            image = read_overlay(ref, stored_map, max_side, self._limits, self._max_pixels,
                                 self._formats)  # fmt: skip
        except Exception as exc:  # any reader or decoder failure is shown, never raised
            return Shown(None, f"{type(exc).__name__}: {exc}")
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        return Shown(out.getvalue())
