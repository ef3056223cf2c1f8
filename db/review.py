"""The review queue, a reviewer's side: open entries, answers and undo, counts (rules: db.reviewrules)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from db import runs
from db.tables import LABELS, Label, Result, ReviewEntry

SKIP = "skip"
ANSWERS = (*LABELS, SKIP)


def open_entries(
    session: Session, *, reason: str | None = None, limit: int | None = 100
) -> list[dict[str, Any]]:
    """Open entries, oldest first, with what the reviewer needs of each photo's row."""
    stmt = (
        select(
            ReviewEntry.request_id,
            ReviewEntry.reason,
            ReviewEntry.entered_at,
            Result.label,
            Result.confidence,
            Result.crack_probability,
            Result.mode,
            Result.asset_id,
            Result.inspection_id,
            Result.image_ref,
        )
        .join(Result, Result.request_id == ReviewEntry.request_id)
        .where(ReviewEntry.state == "open")
        .order_by(ReviewEntry.entered_at, ReviewEntry.request_id)
    )
    if reason is not None:
        stmt = stmt.where(ReviewEntry.reason == reason)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [dict(row._mapping) for row in session.execute(stmt)]


def get_entry(session: Session, request_id: str) -> ReviewEntry | None:
    return session.get(ReviewEntry, request_id)


def answer(session: Session, request_id: str, answer: str, by: str) -> ReviewEntry:
    """A reviewer's answer to an open entry: `crack` or `no_crack` (a label, who, when) or `skip`.

    The label goes through db.runs.set_label (replacing an earlier one), and the entry
    records the same answer, person and time. LookupError when the photo is not in the
    queue, ValueError when its entry is already decided (undo it first).
    """
    if answer not in ANSWERS:
        raise ValueError(f"answer must be one of {', '.join(ANSWERS)}, not {answer!r}")
    entry = session.get(ReviewEntry, request_id, with_for_update=True)
    if entry is None:
        raise LookupError(f"{request_id!r} is not in the review queue")
    if entry.state != "open":
        raise ValueError(
            f"{request_id!r} was already {entry.state} by {entry.decided_by} at "
            f"{entry.decided_at:%Y-%m-%d %H:%M:%S %Z}: `crackq review undo` reopens it"
        )
    if answer != SKIP:
        runs.set_label(session, request_id, answer, by)
    session.execute(
        update(ReviewEntry)
        .where(ReviewEntry.request_id == request_id)
        .values(
            state="skipped" if answer == SKIP else "labelled",
            answer=None if answer == SKIP else answer,
            decided_by=by,
            decided_at=func.now(),
        )
    )
    session.refresh(entry)
    return entry


def undo(session: Session, request_id: str) -> ReviewEntry:
    """Reopen a decided entry; the label its answer wrote goes, unless replaced since.

    A label counts as the answer's when it still has the answer's value, person and time
    (both are written in one transaction, so their times are equal). LookupError when the
    photo is not in the queue, ValueError when its entry is open.
    """
    entry = session.get(ReviewEntry, request_id, with_for_update=True)
    if entry is None:
        raise LookupError(f"{request_id!r} is not in the review queue")
    if entry.state == "open":
        raise ValueError(f"{request_id!r} is open: nothing to undo")
    if entry.state == "labelled":
        session.execute(
            delete(Label).where(
                Label.request_id == request_id,
                Label.label == entry.answer,
                Label.labelled_by == entry.decided_by,
                Label.labelled_at == entry.decided_at,
            )
        )
    session.execute(
        update(ReviewEntry)
        .where(ReviewEntry.request_id == request_id)
        .values(state="open", answer=None, decided_by=None, decided_at=None)
    )
    session.refresh(entry)
    return entry


def queue_counts(session: Session) -> dict[str, dict[str, int]]:
    """Entries per state, then per reason: {"open": {"uncertain": 3, ...}, "labelled": ...}."""
    stmt = select(ReviewEntry.state, ReviewEntry.reason, func.count()).group_by(
        ReviewEntry.state, ReviewEntry.reason
    )
    counts: dict[str, dict[str, int]] = {}
    for state, reason, n in session.execute(stmt):
        counts.setdefault(state, {})[reason] = int(n)
    return counts


def label_counts(session: Session) -> dict[str, int]:
    """Labels per value, and how many of them are review answers (`from_review`)."""
    counts = {label: 0 for label in LABELS}
    for label, n in session.execute(select(Label.label, func.count()).group_by(Label.label)):
        counts[label] = int(n)
    counts["from_review"] = int(session.scalar(_from_review(select(func.count()))) or 0)
    return counts


def _from_review(stmt: Any) -> Any:
    """`stmt` over the labels that are still a review answer (see undo)."""
    return stmt.select_from(Label).join(
        ReviewEntry,
        (ReviewEntry.request_id == Label.request_id)
        & (ReviewEntry.state == "labelled")
        & (ReviewEntry.answer == Label.label)
        & (ReviewEntry.decided_by == Label.labelled_by)
        & (ReviewEntry.decided_at == Label.labelled_at),
    )


def reviewed_refs(session: Session) -> set[str]:
    """The image refs of succeeded photos whose label is a review answer (finetune --labels)."""
    stmt = _from_review(select(Result.image_ref)).join(
        Result, Result.request_id == Label.request_id
    )
    return set(session.scalars(stmt.where(Result.status == "succeeded")))
