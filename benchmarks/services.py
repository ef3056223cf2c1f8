"""The benchmark's own loopback services: a throwaway database, a private Redis db, the photos."""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from harness.database import throwaway_database, url_of
from harness.procs import ROOT
from harness.redis_server import emptied_db

PG_ADMIN_URL = os.environ.get(
    "CRACKQ_BENCH_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_DB = int(os.environ.get("CRACKQ_BENCH_REDIS_DB", "13"))
BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
DB_NAME = f"crackq_bench_{os.getpid()}"
DB_URL = url_of(PG_ADMIN_URL, DB_NAME)
DATA_DIR = Path(os.environ.get("CRACKQ_BENCH_DATA", ROOT.parent / "shared" / "data" / "ozgenel"))

log = logging.getLogger(__name__)


def point_settings_here() -> None:
    """Aim crackq's settings (this process and every worker it starts) at the bench services.

    Must run before anything imports worker.settings: settings are read once per process.
    """
    os.environ.update(
        CRACKQ_DATABASE_URL=DB_URL,
        CRACKQ_BROKER_URL=BROKER_URL,
        CRACKQ_EMBEDDED="never",
        CRACKQ_PRETRAINED="never",  # weights do not change speed; keep runs comparable
        CRACKQ_LOG_LEVEL="INFO",
    )
    for name in ("CRACKQ_MODEL_CHECKPOINT", "CRACKQ_DATABASE_URL_FILE", "CRACKQ_BROKER_URL_FILE"):
        os.environ.pop(name, None)


def bench_database() -> AbstractContextManager[str]:
    """The bench database, migrated to head, dropped on the way out."""
    return throwaway_database(PG_ADMIN_URL, DB_NAME)


@dataclass(frozen=True)
class Photos:
    """Image files to classify, all under `root`; `synthetic` when the real data was absent."""

    root: Path
    paths: list[str]
    synthetic: bool

    def cycle(self, start: int, count: int) -> list[str]:
        """`count` paths from position `start`, wrapping around (distinct ids reuse files)."""
        return [self.paths[(start + i) % len(self.paths)] for i in range(count)]


@contextmanager
def photos(synthetic_count: int) -> Iterator[Photos]:
    """The real photos (shuffled, fixed seed), else `synthetic_count` drawn into a temp dir."""
    root = DATA_DIR.resolve()
    if (root / "Positive").is_dir() and (root / "Negative").is_dir():
        paths = sorted(str(p) for p in root.glob("*/*.jpg"))
        random.Random(0).shuffle(paths)
        log.info("using %d real photos from %s", len(paths), root)
        yield Photos(root, paths, synthetic=False)
        return
    from models.synthetic import make_synthetic_dataset

    with tempfile.TemporaryDirectory(prefix="crackq-bench-photos-") as tmp:
        t0 = time.monotonic()
        samples = make_synthetic_dataset(tmp, max(1, synthetic_count // 2))
        paths = [str(Path(p).resolve()) for p, _ in samples]
        random.Random(0).shuffle(paths)
        log.warning(
            "real photos not found at %s (set CRACKQ_BENCH_DATA): drew %d synthetic ones in %.0f s",
            root,
            len(paths),
            time.monotonic() - t0,
        )
        yield Photos(Path(tmp).resolve(), paths, synthetic=True)


@contextmanager
def bench_services(synthetic_count: int) -> Iterator[tuple[Photos, Engine]]:
    """Photos, the bench database (with an engine on it) and the private Redis db, for one run."""
    from db.session import make_engine

    with photos(synthetic_count) as found, bench_database() as url, emptied_db(BROKER_URL):
        engine = make_engine(url)
        try:
            yield found, engine
        finally:
            engine.dispose()
