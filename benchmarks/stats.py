"""Benchmark figures from the rows and /proc: batch sizes, latency percentiles, memory."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def message_rows(batch_id: str, refs: Sequence[str], first: int = 0) -> list[dict[str, Any]]:
    """One classify row per ref, with distinct request ids `batch_id-<n>`."""
    at = utcnow()
    return [
        {"request_id": f"{batch_id}-{first + i}", "image_ref": r, "batch_id": batch_id,
         "submitted_at": at}
        for i, r in enumerate(refs)
    ]  # fmt: skip


def batch_stats(engine: Engine, batch_id: str) -> dict[str, Any]:
    """Row counts by status, batch sizes and the database-side span of one batch id."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'), "
                "count(*) FILTER (WHERE status = 'failed'), max(batch_size), avg(batch_size), "
                "extract(epoch FROM max(finished_at) - min(started_at)) "
                "FROM results WHERE batch_id = :b"
            ),
            {"b": batch_id},
        ).one()
    return {
        "succeeded": int(row[0]),
        "failed": int(row[1]),
        "largest_batch_in_rows": int(row[2] or 0),
        "mean_batch_in_rows": round(float(row[3] or 0), 1),
        "db_span_s": round(float(row[4] or 0), 2),
    }


def latency_percentiles(engine: Engine, batch_id: str) -> dict[str, float]:
    """p50/p95/p99/max of finished_at - submitted_at (ms) over the final rows of `batch_id`."""
    with engine.connect() as conn:
        ms = conn.scalars(
            text(
                "SELECT extract(epoch FROM finished_at - submitted_at) * 1000 FROM results "
                "WHERE batch_id = :b AND status <> 'queued' AND submitted_at IS NOT NULL"
            ),
            {"b": batch_id},
        ).all()
    if not ms:
        return {}
    a = np.asarray(ms, dtype=float)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
        "p99_ms": round(float(p99), 1),
        "max_ms": round(float(a.max()), 1),
        "mean_ms": round(float(a.mean()), 1),
    }


def rss_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of `pid` in MiB, from /proc."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024.0, 1)
    return {"rss_mb": fields.get("VmRSS", 0.0), "peak_rss_mb": fields.get("VmHWM", 0.0)}


def latency_parts(engine: Engine, batch_id: str) -> dict[str, float]:
    """Medians (ms) of where a request's time went, from the timestamps its row carries.

    to_batch: sent -> its batch started in the worker (publish, broker, consumer, batcher);
    in_worker: batch start -> predictions done (lookup, read + decode, forward pass);
    decode and inference: those two steps alone.
    """
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
                "started_at - submitted_at) * 1000), "
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
                "finished_at - started_at) * 1000), "
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY decode_ms), "
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY inference_ms) "
                "FROM results WHERE batch_id = :b AND status = 'succeeded'"
            ),
            {"b": batch_id},
        ).one()
    names = ("to_batch", "in_worker", "decode", "inference")
    return {k: round(float(v), 1) for k, v in zip(names, row, strict=True) if v is not None}
