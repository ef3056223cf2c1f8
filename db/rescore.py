"""Re-score jobs: which stored rows a job covers, its cursor, and how far it has got."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.tables import RescoreJob, Result


def open_job(
    session: Session,
    *,
    key: str,
    version: str,
    since: dt.datetime,
    until: dt.datetime,
    asset_id: str | None,
    by: str,
) -> tuple[RescoreJob, bool]:
    """The running job of `key` (resumed: True), else a new one with its total counted."""
    found = session.scalar(
        select(RescoreJob).where(RescoreJob.key == key, RescoreJob.status == "running")
    )
    if found is not None:
        return found, True
    job = RescoreJob(
        key=key,
        model_version=version,
        since=since,
        until=until,
        asset_id=asset_id,
        started_by=by[:200],
    )
    job.total = int(session.scalar(select(func.count()).where(*_todo(job))) or 0)
    session.add(job)
    session.flush()
    session.refresh(job)  # the server's defaults (cursor, counts, times) loaded
    return job, False


def _todo(job: RescoreJob) -> list[Any]:
    """The rows `job` must still re-score: succeeded, in its range, not answered by its version."""
    where = [
        Result.status == "succeeded",
        Result.created_at >= job.since,
        Result.created_at < job.until,
        Result.model_version.is_distinct_from(job.model_version),
    ]
    if job.asset_id is not None:
        where.append(Result.asset_id == job.asset_id)
    return where


def next_rows(session: Session, job: RescoreJob, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` rows past the job's cursor that still need its version, in id order."""
    stmt = (
        select(Result.id, Result.request_id, Result.image_ref, Result.batch_id, Result.mode)
        .where(*_todo(job), Result.id > job.last_id)
        .order_by(Result.id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in session.execute(stmt)]


def remaining(session: Session, job: RescoreJob) -> int:
    """Rows of the job not answered by its version yet (sent or not)."""
    return int(session.scalar(select(func.count()).where(*_todo(job))) or 0)


def advance(session: Session, job_id: int, last_id: int, sent: int) -> None:
    """Move the cursor past `last_id`, `sent` more messages sent."""
    session.execute(
        update(RescoreJob)
        .where(RescoreJob.id == job_id)
        .values(last_id=last_id, sent=RescoreJob.sent + sent, updated_at=func.now())
    )


def finish(session: Session, job_id: int) -> None:
    """The job is over: the same command starts a new job (a new `until`) from now on."""
    session.execute(
        update(RescoreJob)
        .where(RescoreJob.id == job_id)
        .values(status="done", finished_at=func.now(), updated_at=func.now())
    )


def recent_jobs(session: Session, limit: int = 20) -> list[RescoreJob]:
    """The newest jobs, running or done."""
    stmt = select(RescoreJob).order_by(RescoreJob.id.desc()).limit(limit)
    return list(session.scalars(stmt))
