"""Download throughput of the artifact stores: one checkpoint into an empty model cache."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

# worker/modelcache.py's line for a download, as a worker logs it on a hot switch
FETCHED = re.compile(r"fetched (\S+) into the model cache: ([\d.]+) MB in ([\d.]+) s")


def fetch_speeds(
    checkpoint: Path,
    s3_url: str,
    sha256: str,
    sessions: sessionmaker[Session],
    s3_endpoint: str,
    scratch: Path,
    tries: int = 3,
) -> list[dict[str, Any]]:
    """Put `checkpoint` in the postgres store, then fetch it `tries` times from there and
    from `s3_url` (already stored), each time into an empty cache, as a new host would."""
    from worker.artifacts import Stores
    from worker.modelcache import ModelCache

    stores = Stores(sessions, s3_endpoint)
    t0 = time.monotonic()
    pg = stores.for_writing("postgres").put(checkpoint, key=f"bench/{checkpoint.name}")
    put_s = time.monotonic() - t0
    assert pg.sha256 == sha256, "the checkpoint changed on its way"
    rows = []
    for store, url in (("postgres", pg.url), ("s3", s3_url)):
        seconds = []
        for i in range(tries):
            cache = ModelCache(scratch / f"empty-{store}-{i}", 8 << 30, stores)
            t0 = time.monotonic()
            cache.path_for(url, sha256)
            seconds.append(time.monotonic() - t0)
        mb = pg.size / 1e6
        rows.append(
            {
                "bench": "scaleout",
                "part": "store_download",
                "store": store,
                "server": "PostgreSQL 127.0.0.1"
                if store == "postgres"
                else "moto S3 server 127.0.0.1",
                "checkpoint_mb": round(mb, 1),
                "tries": tries,
                "seconds_median": round(statistics.median(seconds), 2),
                "mb_per_s_median": round(mb / statistics.median(seconds), 1),
                "mb_per_s_best": round(mb / min(seconds), 1),
                **({"put_s": round(put_s, 2)} if store == "postgres" else {}),
            }
        )
    return rows


def logged_fetches(log: str) -> list[dict[str, Any]]:
    """The downloads a worker's log reports: URL, MB, seconds, MB/s."""
    return [
        {
            "url": url,
            "mb": float(mb),
            "seconds": float(s),
            "mb_per_s": round(float(mb) / max(float(s), 1e-6), 1),
        }
        for url, mb, s in FETCHED.findall(log)
    ]
