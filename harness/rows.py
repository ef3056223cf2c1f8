"""Counting rows of the results table: by request id, by batch, and waiting for them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)


def counts(engine: Engine, ids: list[str]) -> tuple[int, int, int, int]:
    """(final rows, distinct ids with a final row, all rows, distinct ids) among `ids`."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE status <> 'queued'), "
                "count(DISTINCT request_id) FILTER (WHERE status <> 'queued'), "
                "count(*), count(DISTINCT request_id) FROM results WHERE request_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def final_rows(engine: Engine, ids: list[str]) -> int:
    """How many of `ids` have a final (not `queued`) row."""
    return counts(engine, ids)[1]


def queued_ids(engine: Engine, ids: list[str]) -> set[str]:
    """Those of `ids` whose row still says `queued`."""
    return {row["request_id"] for row in queued_rows(engine, ids)}


def queued_rows(engine: Engine, ids: list[str]) -> list[dict[str, Any]]:
    """The rows of `ids` that still say `queued`, with what re-sending their messages takes."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT request_id, image_ref, batch_id, submitted_at FROM results "
                "WHERE status = 'queued' AND request_id = ANY(:i)"
            ),
            {"i": ids},
        )
        return [dict(r._mapping) for r in found]


def snapshot(engine: Engine, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """Each id's status, probability and timestamps: equal snapshots mean nothing was rewritten."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT request_id, status, crack_probability, finished_at, updated_at "
                "FROM results WHERE request_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).all()
    return {r[0]: tuple(r[1:]) for r in found}


def batch_count(engine: Engine, batch_id: str, status: str | None = None) -> int:
    """Rows of `batch_id` with `status`, or all its final rows when `status` is None."""
    where = "status = :s" if status else "status <> 'queued'"
    with engine.connect() as conn:
        n = conn.scalar(
            text(f"SELECT count(*) FROM results WHERE batch_id = :b AND {where}"),
            {"b": batch_id, "s": status},
        )
    return int(n or 0)


@dataclass(frozen=True)
class Wait:
    """How a wait for rows ended."""

    done: int
    seconds: float
    timed_out: bool


def wait_rows(engine: Engine, batch_id: str, expected: int, timeout_s: float) -> Wait:
    """Poll until `expected` final rows of `batch_id` are committed or `timeout_s` passes."""
    t0 = time.monotonic()
    last_log, done = t0, 0
    while True:
        done = batch_count(engine, batch_id)
        now = time.monotonic()
        if done >= expected or now - t0 > timeout_s:
            if done < expected:
                log.warning(
                    "%s: %d/%d rows after %.0f s, giving up", batch_id, done, expected, now - t0
                )
            return Wait(done, now - t0, done < expected)
        if now - last_log > 15:
            log.info("%s: %d/%d rows after %.0f s", batch_id, done, expected, now - t0)
            last_log = now
        time.sleep(0.2)
