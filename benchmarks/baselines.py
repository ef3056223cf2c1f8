"""naive and bulk_write: the naive worker's throughput and the database's bulk write rate."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from benchmarks.services import Photos
from benchmarks.stats import batch_stats, message_rows, utcnow
from harness.procs import READY, Proc
from harness.rows import wait_rows

log = logging.getLogger(__name__)


def naive(photos: Photos, engine: Engine, tmp: Path, n: int) -> dict[str, Any]:
    """`n` photos through benchmarks.naive_worker (prefork x2, batch 1, fp32, commit per row)."""
    from benchmarks import naive_worker

    with naive_worker.app.producer_or_acquire() as producer:
        for row in message_rows("bench-naive", photos.cycle(0, n)):
            naive_worker.app.send_task(
                naive_worker.TASK,
                kwargs={
                    "image_ref": row["image_ref"],
                    "request_id": row["request_id"],
                    "submitted_at": row["submitted_at"].isoformat(),
                },
                queue=naive_worker.QUEUE,
                producer=producer,
            )
    log.info("naive: %d messages queued; starting the naive worker", n)
    argv = [sys.executable, "-m", "celery", "-A", "benchmarks.naive_worker", "worker"]
    argv += ["-Q", naive_worker.QUEUE, "-P", "prefork", "-c", "2", "-n", "naive@localhost"]
    argv += ["-l", "INFO", "--without-gossip", "--without-mingle"]
    with Proc(argv, tmp / "naive.log") as w:
        w.wait_for_log(READY, 300)
        # Timed once both children have built their model, as the real worker is at READY.
        w.wait_for_log(r"(?s)naive child \d+ ready.*naive child \d+ ready", 300)
        t0 = time.monotonic()
        waited = wait_rows(engine, "bench-naive", n, timeout_s=120 + n * 1.0)
        seconds = time.monotonic() - t0
    return {
        "bench": "naive",
        "images": n,
        "seconds": round(seconds, 2),
        "images_per_s": round(waited.done / seconds, 2),
        "config": "celery prefork -c 2, torch 1 thread per child, batch 1, fp32 NCHW, "
        "INSERT + commit per row, system allocator",
        **batch_stats(engine, "bench-naive"),
        "timed_out": waited.timed_out,
    }


def bulk_write(engine: Engine, rows: int = 20_000, per_batch: int = 1_000) -> dict[str, Any]:
    """rows/s of db.results.write_outcomes: one statement and one commit per `per_batch` rows."""
    from sqlalchemy.orm import Session

    from db.results import write_outcomes

    now = utcnow()
    template = {
        "image_ref": "/bench/photo.jpg", "batch_id": "bench-bulk", "status": "succeeded",
        "label": "crack", "confidence": 0.9, "crack_probability": 0.9, "model_version": "bench",
        "decode_ms": 1.0, "inference_ms": 100.0, "batch_size": 32, "worker_host": "bench",
        "submitted_at": now, "started_at": now, "finished_at": now,
    }  # fmt: skip
    batches = [
        [{**template, "request_id": f"bulk-{b * per_batch + i}"} for i in range(per_batch)]
        for b in range(rows // per_batch)
    ]
    t0 = time.perf_counter()
    written = 0
    with Session(engine) as session:
        for batch in batches:
            with session.begin():
                written += write_outcomes(session, batch)
    seconds = time.perf_counter() - t0
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM results WHERE batch_id = 'bench-bulk'"))
    return {
        "bench": "bulk_write",
        "rows": written,
        "rows_per_batch": per_batch,
        "seconds": round(seconds, 3),
        "rows_per_s": round(written / seconds, 1),
    }
