"""Load run: N references submitted at once through the producer API, one worker, memory sampled.

`load_run` is what `python -m benchmarks.reliability` reports as the load row; on its own:
    .venv/bin/python -m benchmarks.load --n 20000
(its own database and Redis db, as benchmarks.run; prints one JSON line).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from benchmarks.rows import final_count, rss_mb
from benchmarks.services import Photos
from tests.procs import READY, worker

log = logging.getLogger(__name__)
BATCH_ID = "load-run"


def load_run(tmp: Path, n: int, photos: Photos, engine: Engine) -> dict[str, Any]:
    """Submit `n` refs at once (crackq's submit), serve them with one worker, count the rows.

    RSS is read when the first rows land (start), at n/2 (middle) and at the end; queue
    depth and rows/s are sampled every 10 s, as an operator would watch `crackq status`.
    """
    import redis

    from worker.app import INFERENCE_QUEUE, app
    from worker.enqueue import submit
    from worker.runtime import get_sessions
    from worker.settings import get_settings

    refs = photos.cycle(0, n)
    t0 = time.monotonic()
    sub = submit(app, get_sessions(), refs, batch_id=BATCH_ID)
    submit_s = time.monotonic() - t0
    broker = redis.Redis.from_url(get_settings().broker())
    log.info("load: %d refs submitted in %.1f s; starting the worker", n, submit_s)
    env = {"CRACKQ_ALLOWED_ROOTS": str(photos.root)}
    rss: dict[str, float] = {}
    samples: list[dict[str, Any]] = []
    with worker(tmp, "load", env=env) as w:
        assert w.proc is not None
        w.wait_for_log(READY, 300)
        started = last_sample = time.monotonic()
        deadline, done, before = started + 120 + n / 4, 0, 0
        while done < n and time.monotonic() < deadline:
            time.sleep(1.0)
            done, now = final_count(engine, BATCH_ID), time.monotonic()
            if done and "start" not in rss:
                rss["start"] = rss_mb(w.proc.pid)["rss_mb"]
            if done >= n // 2 and "middle" not in rss:
                rss["middle"] = rss_mb(w.proc.pid)["rss_mb"]
            if now - last_sample >= 10:
                rate = (done - before) / (now - last_sample)
                depth = broker.llen(INFERENCE_QUEUE)
                samples.append({"t_s": round(now - started), "rows": done, "queue": depth,
                                "rows_per_s": round(rate, 1)})  # fmt: skip
                log.info("load: %d/%d rows, queue %d, %.1f rows/s", done, n, depth, rate)
                last_sample, before = now, done
        seconds = time.monotonic() - started
        rss["end"] = rss_mb(w.proc.pid)["rss_mb"]
        peak = rss_mb(w.proc.pid)["peak_rss_mb"]
    stored, distinct, rows = _counts(engine, sub.request_ids)
    return {
        "bench": "load",
        "submitted": n,
        "submit_s": round(submit_s, 1),
        "stored": stored,
        "lost": n - distinct,
        "duplicated": rows - distinct,
        "succeeded": _status_count(engine, "succeeded"),
        "failed": _status_count(engine, "failed"),
        "seconds": round(seconds, 1),
        "images_per_s": round(stored / seconds, 1),
        "rss_mb": rss,
        "peak_rss_mb": peak,
        "rss_growth_pct": round(100 * (rss["end"] - rss.get("start", rss["end"])) / rss["end"], 2),
        "samples": samples,
        "synthetic_photos": photos.synthetic,
    }


def _counts(engine: Engine, request_ids: list[str]) -> tuple[int, int, int]:
    """(final rows, distinct request ids among all rows, all rows) for the submitted ids."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE status <> 'queued'), "
                "count(DISTINCT request_id), count(*) FROM results WHERE request_id = ANY(:ids)"
            ),
            {"ids": request_ids},
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _status_count(engine: Engine, status: str) -> int:
    with engine.connect() as conn:
        n = conn.scalar(
            text("SELECT count(*) FROM results WHERE batch_id = :b AND status = :s"),
            {"b": BATCH_ID, "s": status},
        )
    return int(n or 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="references to submit (default 20000)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    from benchmarks import services

    services.point_settings_here()
    with (
        services.bench_services(min(args.n, 2000)) as (photos, engine),
        tempfile.TemporaryDirectory(prefix="crackq-load-") as tmp,
    ):
        result = load_run(Path(tmp), args.n, photos, engine)
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
