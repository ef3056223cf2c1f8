"""Load run: N references submitted at once through the producer API, one worker, memory sampled.

`load_run` is what the reliability suite reports as the load row; on its own:
    .venv/bin/python -m benchmarks.run --suite load --n 20000
(its own database and Redis db, as every suite; prints one JSON line).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from benchmarks.services import Photos
from benchmarks.stats import rss_mb
from harness.procs import READY, worker
from harness.rows import batch_count, counts

log = logging.getLogger(__name__)
BATCH_ID = "load-run"


def load_run(tmp: Path, n: int, photos: Photos, engine: Engine) -> dict[str, Any]:
    """Submit `n` refs at once (crackq's submit), serve them with one worker, count the rows.

    RSS is read when the first rows land (start), at n/2 (middle) and at the end; queue
    depth and rows/s are sampled every 10 s, as an operator would watch `crackq status`.
    """
    from worker.app import app
    from worker.enqueue import submit
    from worker.runtime import get_sessions

    refs = photos.cycle(0, n)
    t0 = time.monotonic()
    sub = submit(app, get_sessions(), refs, batch_id=BATCH_ID)
    submit_s = time.monotonic() - t0
    log.info("load: %d refs submitted in %.1f s; starting the worker", n, submit_s)
    env = {"CRACKQ_ALLOWED_ROOTS": str(photos.root)}
    with worker(tmp, "load", env=env) as w:
        assert w.proc is not None
        w.wait_for_log(READY, 300)
        started = time.monotonic()
        rss, samples = watch(w.proc.pid, engine, n, started)
        seconds = time.monotonic() - started
        rss["end"] = rss_mb(w.proc.pid)["rss_mb"]
        peak = rss_mb(w.proc.pid)["peak_rss_mb"]
    stored, _, rows, distinct = counts(engine, sub.request_ids)
    return {
        "bench": "load",
        "submitted": n,
        "submit_s": round(submit_s, 1),
        "stored": stored,
        "lost": n - distinct,
        "duplicated": rows - distinct,
        "succeeded": batch_count(engine, BATCH_ID, "succeeded"),
        "failed": batch_count(engine, BATCH_ID, "failed"),
        "seconds": round(seconds, 1),
        "images_per_s": round(stored / seconds, 1),
        "rss_mb": rss,
        "peak_rss_mb": peak,
        "rss_growth_pct": round(100 * (rss["end"] - rss.get("start", rss["end"])) / rss["end"], 2),
        "samples": samples,
        "synthetic_photos": photos.synthetic,
    }


def watch(
    pid: int, engine: Engine, n: int, started: float
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Until `n` rows are final (or a deadline): RSS at the first and the n/2-th row, and
    the queue depth and rows/s every 10 s."""
    import redis

    from worker.app import INFERENCE_QUEUE
    from worker.settings import get_settings

    broker = redis.Redis.from_url(get_settings().broker())
    rss: dict[str, float] = {}
    samples: list[dict[str, Any]] = []
    last_sample = started
    deadline, done, before = started + 120 + n / 4, 0, 0
    while done < n and time.monotonic() < deadline:
        time.sleep(1.0)
        done, now = batch_count(engine, BATCH_ID), time.monotonic()
        if done and "start" not in rss:
            rss["start"] = rss_mb(pid)["rss_mb"]
        if done >= n // 2 and "middle" not in rss:
            rss["middle"] = rss_mb(pid)["rss_mb"]
        if now - last_sample >= 10:
            rate = (done - before) / (now - last_sample)
            depth = broker.llen(INFERENCE_QUEUE)
            samples.append({"t_s": round(now - started), "rows": done, "queue": depth,
                            "rows_per_s": round(rate, 1)})  # fmt: skip
            log.info("load: %d/%d rows, queue %d, %.1f rows/s", done, n, depth, rate)
            last_sample, before = now, done
    broker.close()
    return rss, samples


def main(argv: list[str], prog: str) -> int:
    """The load suite: one load run on its own services; one JSON line."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__)
    ap.add_argument("--n", type=int, default=20_000, help="references to submit (default 20000)")
    args = ap.parse_args(argv)
    from benchmarks import services

    services.point_settings_here()
    with (
        services.bench_services(min(args.n, 2000)) as (photos, engine),
        tempfile.TemporaryDirectory(prefix="crackq-load-") as tmp,
    ):
        result = load_run(Path(tmp), args.n, photos, engine)
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1
