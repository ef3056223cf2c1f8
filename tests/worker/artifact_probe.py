"""A child process that puts and fetches one file through a store; peak RSS growth of each.

`python -m tests.worker.artifact_probe SETTING FILE DEST` prints one JSON line: seconds and
peak RSS growth (bytes) of the put and of the fetch. The peak (VmHWM) is reset through
/proc/self/clear_refs after a small warm-up, so only the big transfer is measured.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _measured(step):  # type: ignore[no-untyped-def]
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _rss_kib("VmRSS")
    started = time.perf_counter()
    result = step()
    took = time.perf_counter() - started
    return result, took, (_rss_kib("VmHWM") - before) * 1024


def main(setting: str, file: Path, dest: Path) -> None:
    from db.session import make_engine, make_sessionmaker
    from worker.artifacts import Stores

    sessions = make_sessionmaker(make_engine(os.environ["CRACKQ_DATABASE_URL"]))
    stores = Stores(sessions, os.environ.get("CRACKQ_S3_ENDPOINT_URL"))
    store = stores.for_writing(setting)
    warm = dest.with_name("warm.bin")
    warm.write_bytes(os.urandom(3 << 20))
    small = store.put(warm, "probe/warm.bin")
    stores.fetch(small.url, small.sha256, dest.with_name("warm.out"))
    stored, put_s, put_growth = _measured(lambda: store.put(file, f"probe/{file.name}"))
    _, fetch_s, fetch_growth = _measured(lambda: stores.fetch(stored.url, stored.sha256, dest))
    print(json.dumps({
        "url": stored.url, "size": stored.size, "sha256": stored.sha256,
        "put_s": put_s, "put_growth": put_growth,
        "fetch_s": fetch_s, "fetch_growth": fetch_growth,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
