"""Queries on the results table: bulk idempotent writes and reporting reads."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db import scores
from db.staging import copy_into_stage
from db.tables import Result

# What a photo shows, from its message: set when queued, kept by the final outcome.
ASSET_COLUMNS = ("asset_id", "inspection_id", "captured_at", "metadata")
# Columns a final outcome may set; anything else in a row dict is ignored.
OUTCOME_COLUMNS = (
    "image_ref",
    "batch_id",
    "status",
    "label",
    "confidence",
    "crack_probability",
    "model_version",
    "error_code",
    "error_message",
    "decode_ms",
    "inference_ms",
    "batch_size",
    "worker_host",
    "mode",
    "tiles",
    "crack_tiles",
    "crack_area_fraction",
    "crack_regions",
    "submitted_at",
    "started_at",
    "finished_at",
    *ASSET_COLUMNS,
)


QUEUED_COLUMNS = ("request_id", "image_ref", "batch_id", "submitted_at", *ASSET_COLUMNS)
WRITE_COLUMNS = ("request_id", *OUTCOME_COLUMNS)
# Rows per COPY and ids per IN list: one statement's memory stays bounded however many
# references a caller hands over (a folder of photos, a bulk message).
CHUNK = 5000


def insert_queued(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert `queued` rows, skipping request ids that exist; returns the ids inserted."""
    inserted: set[str] = set()
    for chunk in chunks(rows):
        stage = copy_into_stage(session, "results", QUEUED_COLUMNS, chunk)
        inserted.update(session.scalars(text(_insert_queued_sql(stage))))
    return inserted


def write_outcomes(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Upsert final outcomes in one statement; the first final outcome of an id wins.

    A request id that is already `succeeded` or `failed` keeps its row untouched, so a
    redelivered message can never change or duplicate a stored result. The rows go in by
    COPY (db.staging); returns how many rows were inserted or updated.
    """
    return len(upsert_outcomes(session, rows))


def upsert_outcomes(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """write_outcomes, returning the request ids whose row this call made final.

    Each succeeded row made final also gets its score history row (db.scores, source
    `live`) in the same transaction; a redelivery makes nothing final, so adds none.
    """
    if not rows:
        return set()
    stage = copy_into_stage(session, "results", WRITE_COLUMNS, rows)
    written = set(session.scalars(text(_upsert_sql(stage))))
    scores.record_staged(session, stage, written, "live")
    return written


@functools.cache
def _insert_queued_sql(stage: str) -> str:
    cols = ", ".join(QUEUED_COLUMNS)
    # DISTINCT ON: a request id repeated within one call is one row, as with VALUES.
    return (
        f"INSERT INTO results ({cols}, status) "
        f"SELECT DISTINCT ON (request_id) {cols}, 'queued' FROM {stage} "
        "ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
    )


@functools.cache
def _upsert_sql(stage: str) -> str:
    cols = ", ".join(WRITE_COLUMNS)
    kept = ("submitted_at", *ASSET_COLUMNS)  # the queued row's values win, when it has them
    updates = [f"{c} = EXCLUDED.{c}" for c in OUTCOME_COLUMNS if c not in kept]
    updates += [f"{c} = coalesce(results.{c}, EXCLUDED.{c})" for c in kept]
    updates += ["updated_at = now()"]
    return (
        f"INSERT INTO results ({cols}) SELECT DISTINCT ON (request_id) {cols} FROM {stage} "
        f"ON CONFLICT (request_id) DO UPDATE SET {', '.join(updates)} "
        "WHERE results.status = 'queued' RETURNING request_id"
    )


def finished_ids(session: Session, request_ids: Iterable[str]) -> set[str]:
    """The ids among `request_ids` that already have a final outcome."""
    done: set[str] = set()
    for chunk in chunks(list(set(request_ids))):
        finished = Result.request_id.in_(chunk), Result.status != "queued"
        done.update(session.scalars(select(Result.request_id).where(*finished)))
    return done


def status_counts(session: Session, request_ids: Sequence[str]) -> dict[str, int]:
    """How many of `request_ids` are in each status."""
    counts: dict[str, int] = {}
    for chunk in chunks(request_ids):
        stmt = (
            select(Result.status, func.count())
            .where(Result.request_id.in_(chunk))
            .group_by(Result.status)
        )
        for status, n in session.execute(stmt):
            counts[status] = counts.get(status, 0) + int(n)
    return counts


def outcome_totals(session: Session) -> dict[tuple[str, str], int]:
    """Rows per (status, error code) in the whole table; the code is "" except for failures."""
    stmt = select(Result.status, Result.error_code, func.count()).group_by(
        Result.status, Result.error_code
    )
    return {(status, code or ""): int(n) for status, code, n in session.execute(stmt)}


def stale_queued(session: Session, older_than_s: float, limit: int) -> list[dict[str, Any]]:
    """Rows still `queued` that were created more than `older_than_s` seconds ago, oldest first.

    Such a row's message is lost or stuck: a worker killed between taking it from Redis and
    recording it as unacked loses it (kombu's Redis transport), and the row stays queued.
    """
    stmt = (
        select(
            Result.request_id,
            Result.image_ref,
            Result.batch_id,
            Result.submitted_at,
            Result.asset_id,
            Result.inspection_id,
            Result.captured_at,
            Result.asset_metadata.label("metadata"),
        )
        .where(*_stale(older_than_s))
        .order_by(Result.created_at)
        .limit(limit)
    )
    return [dict(row._mapping) for row in session.execute(stmt)]


def stale_queued_count(session: Session, older_than_s: float) -> int:
    """How many rows `stale_queued` would find without a limit."""
    return int(session.scalar(select(func.count()).where(*_stale(older_than_s))) or 0)


def _stale(older_than_s: float) -> tuple[Any, Any]:
    since = func.now() - dt.timedelta(seconds=older_than_s)
    return Result.status == "queued", Result.created_at < since


def recent_activity(session: Session, seconds: float) -> dict[str, int]:
    """Rows still queued, and final rows (and failed ones) finished in the last `seconds`."""
    since = func.now() - dt.timedelta(seconds=seconds)
    recent = Result.finished_at >= since
    row = session.execute(
        select(
            func.count().filter(Result.status == "queued"),
            func.count().filter(recent, Result.status != "queued"),
            func.count().filter(recent, Result.status == "failed"),
        )
    ).one()
    return {"queued": int(row[0]), "finished": int(row[1]), "failed": int(row[2])}


def query_results(
    session: Session,
    *,
    request_ids: Sequence[str] | None = None,
    batch_id: str | None = None,
    status: str | None = None,
    label: str | None = None,
    model_version: str | None = None,
    since: dt.datetime | None = None,
    limit: int | None = 100,
) -> list[Result]:
    """Results matching every given filter, newest first."""
    stmt = select(Result).order_by(Result.created_at.desc(), Result.id.desc())
    if request_ids is not None:
        stmt = stmt.where(Result.request_id.in_(list(request_ids)))
    if batch_id is not None:
        stmt = stmt.where(Result.batch_id == batch_id)
    if status is not None:
        stmt = stmt.where(Result.status == status)
    if label is not None:
        stmt = stmt.where(Result.label == label)
    if model_version is not None:
        stmt = stmt.where(Result.model_version == model_version)
    if since is not None:
        stmt = stmt.where(Result.created_at >= since)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """`items` in consecutive slices of at most `size` (the one place statements are split)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
