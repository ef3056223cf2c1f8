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
from harness.procs import READY, free_port, worker
from harness.rows import batch_count, counts
from harness.scrape import scrape, total

log = logging.getLogger(__name__)
BATCH_ID = "load-run"


def load_run(
    tmp: Path, n: int, photos: Photos, engine: Engine, port: int | None = None
) -> dict[str, Any]:
    """Submit `n` refs at once (crackq's submit), serve them with one worker, count the rows.

    The worker serves /metrics on `port` (a free one by default). RSS is read when the first rows land (start), at n/2 (middle) and at the end; queue
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
    port = port or free_port()
    # database gauges at most 2 s old (default 10), so the last scrape can match PostgreSQL
    env = {"CRACKQ_ALLOWED_ROOTS": str(photos.root), "CRACKQ_METRICS_PORT": str(port),
           "CRACKQ_METRICS_DB_S": "2"}  # fmt: skip
    endpoint = Scrapes(f"http://127.0.0.1:{port}")
    with worker(tmp, "load", env=env) as w:
        assert w.proc is not None
        w.wait_for_log(READY, 300)
        started = time.monotonic()
        rss, samples = watch(w.proc.pid, engine, n, started, endpoint)
        seconds = time.monotonic() - started
        rss["end"] = rss_mb(w.proc.pid)["rss_mb"]
        peak = rss_mb(w.proc.pid)["peak_rss_mb"]
        time.sleep(2.5)  # the last acks follow the last commit; the gauges' 2 s cache
        final = scrape(endpoint.base)
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
        "metrics": endpoint.summary(final, stored),
        "synthetic_photos": photos.synthetic,
    }


class Scrapes:
    """The worker's /metrics scraped beside Redis during the run, as Prometheus would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.ms: list[float] = []
        self.queue_gap: list[float] = []  # |scraped waiting + unacked - Redis's|, messages

    def sample(self, broker: Any) -> None:
        t0 = time.perf_counter()
        try:
            got = scrape(self.base)
        except Exception as exc:  # counted as a missing scrape, never fatal to the run
            log.warning("load: scrape failed: %s", exc)
            return
        self.ms.append((time.perf_counter() - t0) * 1000)
        redis_depth = broker.llen("inference") + broker.hlen("unacked")
        scraped = total(got, "crackq_queue_messages", queue="inference")
        self.queue_gap.append(abs(scraped - redis_depth))

    def summary(self, final: dict[Any, float], stored: int) -> dict[str, Any]:
        """Scrape cost, the queue gauge against Redis, the row counter against PostgreSQL."""
        ms = sorted(self.ms) or [float("nan")]
        return {
            "scrapes": len(self.ms),
            "scrape_ms_p50": round(ms[len(ms) // 2], 1),
            "scrape_ms_max": round(ms[-1], 1),
            "queue_gap_max": max(self.queue_gap, default=None),
            "rows_counted": total(final, "crackq_rows_stored_total"),
            "rows_stored": stored,
            "results_gauge": total(final, "crackq_results")
            - total(final, "crackq_results", status="queued"),
        }


def watch(
    pid: int, engine: Engine, n: int, started: float, endpoint: Scrapes
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Until `n` rows are final (or a deadline): RSS at the first and the n/2-th row, the
    queue depth and rows/s every 10 s, the worker's /metrics every second."""
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
        endpoint.sample(broker)
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
