"""The local cache of checkpoints fetched from the artifact store, bounded in size (LRU)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from worker.artifacts import Stores, local_path_of
from worker.settings import Settings

log = logging.getLogger(__name__)
CACHED = re.compile(r"[0-9a-f]{64}\.pt")
STALE_PART_S = 3600  # a download's temp file this old was left by a killed process


class ModelCache:
    """Checkpoints by sha256 under `root`: fetched once, verified, renamed into place.

    A hit is a file named by its sha256 (the load verifies it again). Past `max_bytes`, the
    least recently used files go, never the one being fetched nor the one `serving` names.
    Local paths in the registry are not cached: they are read where they lie, as before.
    """

    def __init__(self, root: Path, max_bytes: int, stores: Stores) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.stores = stores
        self.downloads = 0  # fetched from a store by this process (cache misses)
        self._serving: str | None = None
        self._lock = threading.Lock()

    def path_for(self, url: str, sha256: str) -> Path:
        """A local, complete copy of the checkpoint at `url` (fetched on a miss)."""
        local = local_path_of(url)
        if local is not None:
            return local
        sha256 = sha256.lower()
        path = self.root / f"{sha256}.pt"
        with self._lock:
            if path.is_file():
                os.utime(path)  # recently used, also for other processes sharing the folder
                log.info("model cache hit: %s (%s)", url, path)
                return path
            started = time.monotonic()
            self.stores.fetch(url, sha256, path)
            self.downloads += 1
            took = time.monotonic() - started
            size = path.stat().st_size
            log.info(
                "fetched %s into the model cache: %.1f MB in %.2f s (%.0f MB/s)",
                url, size / 1e6, took, size / 1e6 / max(took, 1e-6),
            )  # fmt: skip
            self._evict(keep={sha256, self._serving})
        return path

    def serving(self, sha256: str | None) -> None:
        """The version this process now serves: never evicted while it is."""
        self._serving = sha256.lower() if sha256 else None

    def forget(self, sha256: str) -> None:
        """Drop a cached copy that would not load (it is fetched again next time)."""
        (self.root / f"{sha256.lower()}.pt").unlink(missing_ok=True)

    def _evict(self, keep: set[str | None]) -> None:
        entries = []
        for entry in os.scandir(self.root):
            if entry.name.endswith(".part"):
                self._drop_stale(entry)
            elif CACHED.fullmatch(entry.name):
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # another process evicted it meanwhile
                    continue
                entries.append((stat.st_mtime, stat.st_size, entry.name))
        total = sum(size for _, size, _ in entries)
        for _, size, name in sorted(entries):
            if total <= self.max_bytes:
                break
            if name[:64] in keep:
                continue
            (self.root / name).unlink(missing_ok=True)
            total -= size
            log.info("model cache: evicted %s (%.1f MB)", name, size / 1e6)
        if total > self.max_bytes:
            log.warning(
                "model cache %s holds %.1f MB, over CRACKQ_MODEL_CACHE_MB=%.0f: only versions "
                "in use are left", self.root, total / 1e6, self.max_bytes / 1e6,
            )  # fmt: skip

    @staticmethod
    def _drop_stale(entry: os.DirEntry[str]) -> None:
        try:
            if time.time() - entry.stat().st_mtime > STALE_PART_S:
                os.unlink(entry.path)
        except FileNotFoundError:
            pass


def cache_from_settings(settings: Settings, sessions: sessionmaker[Session] | None) -> ModelCache:
    """The process's model cache as the settings describe it."""
    stores = Stores(sessions, settings.s3_endpoint_url)
    return ModelCache(settings.models_cache(), settings.model_cache_mb << 20, stores)
