"""Training runs and operator labels: create, claim, beat, sweep, finish, cancel, read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.tables import Label, Result, TrainingRun


class RunNotFound(LookupError):
    """No training run with that id."""


FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def create_run(
    session: Session,
    run_id: str,
    config: dict[str, Any],
    sources: dict[str, Any],
    retry_of: str | None = None,
) -> TrainingRun:
    run = TrainingRun(
        run_id=run_id, config=config, sources=sources, status="queued", retry_of=retry_of
    )
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, run_id: str) -> TrainingRun:
    run = session.scalar(select(TrainingRun).where(TrainingRun.run_id == run_id))
    if run is None:
        raise RunNotFound(f"no training run {run_id!r}")
    return run


def list_runs(session: Session, limit: int = 20) -> Sequence[TrainingRun]:
    return session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)).all()


def status_totals(session: Session) -> dict[str, int]:
    """Training runs per status."""
    stmt = select(TrainingRun.status, func.count()).group_by(TrainingRun.status)
    return {status: int(n) for status, n in session.execute(stmt)}


def running(session: Session) -> Sequence[TrainingRun]:
    """The runs in progress (their `progress` is what the training loop last reported)."""
    return session.scalars(select(TrainingRun).where(TrainingRun.status == "running")).all()


def update_run(session: Session, run_id: str, **fields: Any) -> None:
    """Set fields on a run; `started_at`/`finished_at` = True means the database's now()."""
    for key in ("started_at", "finished_at"):
        if fields.get(key) is True:
            fields[key] = func.now()
    session.execute(update(TrainingRun).where(TrainingRun.run_id == run_id).values(**fields))


def claim_run(session: Session, run_id: str, worker: str) -> TrainingRun | None:
    """queued -> running in one statement; None when the run is not queued (any more).

    Two deliveries of one run's message can race here: exactly one gets the row.
    """
    now = func.now()
    stmt = (
        update(TrainingRun)
        .where(TrainingRun.run_id == run_id, TrainingRun.status == "queued")
        .values(status="running", started_at=now, heartbeat_at=now, worker=worker)
        .returning(TrainingRun)
    )
    return session.scalars(stmt, execution_options={"populate_existing": True}).one_or_none()


def beat(session: Session, run_id: str) -> bool:
    """Record a running run's heartbeat; False when it is no longer running (e.g. swept)."""
    stmt = (
        update(TrainingRun)
        .where(TrainingRun.run_id == run_id, TrainingRun.status == "running")
        .values(heartbeat_at=func.now())
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def finish_run(session: Session, run_id: str, status: str, **fields: Any) -> bool:
    """running -> a final status with `fields`; False (nothing written) if it was not running."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"{status!r} is not a final run status")
    stmt = (
        update(TrainingRun)
        .where(TrainingRun.run_id == run_id, TrainingRun.status == "running")
        .values(status=status, finished_at=func.now(), **fields)
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def fail_dead_runs(session: Session, dead_after_s: float) -> list[tuple[str, str]]:
    """Mark `failed` every running run without a heartbeat for `dead_after_s`: (run id, why).

    Rows are taken FOR UPDATE SKIP LOCKED, so of several sweepers exactly one fails each.
    """
    last = func.coalesce(TrainingRun.heartbeat_at, TrainingRun.started_at, TrainingRun.created_at)
    stale = (
        select(TrainingRun.run_id, TrainingRun.worker, last.label("last"))
        .where(
            TrainingRun.status == "running", last < func.now() - dt.timedelta(seconds=dead_after_s)
        )
        .with_for_update(skip_locked=True)
    )
    failed = []
    for run_id, worker, seen in session.execute(stale).all():
        when = seen.isoformat(timespec="seconds")
        why = f"worker died: no heartbeat since {when} (worker {worker or 'unknown'})"
        finish_run(session, run_id, "failed", message=why)
        failed.append((run_id, why))
    return failed


def request_cancel(session: Session, run_id: str) -> TrainingRun:
    run = get_run(session, run_id)
    run.cancel_requested = True
    session.flush()
    return run


def cancel_requested(session: Session, run_id: str) -> bool:
    return bool(
        session.scalar(select(TrainingRun.cancel_requested).where(TrainingRun.run_id == run_id))
    )


def set_label(session: Session, request_id: str, label: str, labelled_by: str) -> None:
    """Attach (or replace) an operator's label on a stored result that succeeded.

    A failed or refused row never had its image decoded (it may name a file outside the
    allowed roots, or no image at all), and a queued one not yet: ValueError for those.
    """
    row = session.execute(
        select(Result.status, Result.error_code).where(Result.request_id == request_id)
    ).first()
    if row is None:
        raise LookupError(f"no result with request id {request_id!r}")
    if row.status != "succeeded":
        why = f" ({row.error_code})" if row.error_code else ""
        raise ValueError(
            f"result {request_id!r} is {row.status}{why}, not succeeded: "
            "only an image that was classified can be labelled"
        )
    stmt = insert(Label).values(request_id=request_id, label=label, labelled_by=labelled_by)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Label.request_id],
        set_={
            "label": stmt.excluded.label,
            "labelled_by": stmt.excluded.labelled_by,
            "labelled_at": func.now(),
        },
    )
    session.execute(stmt)


def labelled_refs(session: Session) -> list[tuple[str, str]]:
    """(image_ref, label) for every labelled result that succeeded (see set_label)."""
    stmt = (
        select(Result.image_ref, Label.label)
        .join(Label, Label.request_id == Result.request_id)
        .where(Result.status == "succeeded")
    )
    return [(ref, label) for ref, label in session.execute(stmt)]
