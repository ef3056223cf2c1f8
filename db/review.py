"""The review queue: the rules that put stored photos in it, a reviewer's answers, counts."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from db import runs
from db.tables import LABELS, Label, Result, ReviewEntry

SKIP = "skip"
ANSWERS = (*LABELS, SKIP)
# One transaction-level advisory lock serialises the sample cap across workers.
SAMPLE_LOCK = 0x637271_7276  # "crqrv"

# The photos of this batch that a rule picks, with the first rule that picks each (README
# "Review queue", `enter`); probabilities are on the rows' 0.5 scale. A photo's inspection
# is its asset's photos sharing its inspection_id (a photo without one is an inspection
# alone), started at its earliest photo time; the previous inspection is the asset's
# latest one started before it. 'sample' marks a confident photo drawn at :rate, entered
# by _SAMPLE under the cap.
_RULES = """
WITH batch AS (
    SELECT r.request_id, r.label, r.crack_probability, r.mode, r.crack_tiles,
           r.crack_regions, r.asset_id, r.inspection_id
    FROM results r
    WHERE r.request_id = ANY(CAST(:ids AS text[])) AND r.status = 'succeeded'
),
judged AS (
    SELECT b.request_id,
           CASE
               WHEN b.mode = 'map' AND :band > 0 AND (
                   (b.crack_tiles > 0 AND b.crack_regions = 0)
                   OR EXISTS (SELECT 1 FROM crack_regions g
                              WHERE g.request_id = b.request_id
                                AND g.max_probability < 0.5 + :band))
                   THEN 'borderline_map'
               WHEN abs(b.crack_probability - 0.5) < :band THEN 'uncertain'
               WHEN prev.crack IS NOT NULL AND prev.crack <> (b.label = 'crack')
                    AND (b.label = 'crack' OR NOT cur.crack)
                   THEN 'asset_changed'
               WHEN random() < :rate THEN 'sample'
           END AS reason
    FROM batch b
    LEFT JOIN LATERAL (
        SELECT bool_or(p.label = 'crack') AS crack,
               min(coalesce(p.captured_at, p.submitted_at, p.created_at)) AS started
        FROM results p
        WHERE b.asset_id IS NOT NULL AND p.asset_id = b.asset_id AND p.status = 'succeeded'
          AND (p.inspection_id = b.inspection_id
               OR (b.inspection_id IS NULL AND p.request_id = b.request_id))
    ) cur ON true
    LEFT JOIN LATERAL (
        SELECT bool_or(p.label = 'crack') AS crack
        FROM results p
        WHERE b.asset_id IS NOT NULL AND p.asset_id = b.asset_id AND p.status = 'succeeded'
        GROUP BY p.inspection_id, CASE WHEN p.inspection_id IS NULL THEN p.request_id END
        HAVING min(coalesce(p.captured_at, p.submitted_at, p.created_at)) < cur.started
        ORDER BY min(coalesce(p.captured_at, p.submitted_at, p.created_at)) DESC,
                 p.inspection_id DESC NULLS LAST
        LIMIT 1
    ) prev ON true
),
entered AS (
    INSERT INTO review_queue (request_id, reason)
    SELECT request_id, reason FROM judged WHERE reason <> 'sample'
    ON CONFLICT (request_id) DO NOTHING
    RETURNING request_id, reason
)
SELECT request_id, reason FROM entered
UNION ALL
SELECT request_id, reason FROM judged WHERE reason = 'sample'
"""

# Drawn confident photos, as many as the last hour's sample entries leave room for.
_SAMPLE = """
INSERT INTO review_queue (request_id, reason)
SELECT request_id, 'sample' FROM unnest(CAST(:ids AS text[])) AS request_id
LIMIT greatest(0, :cap - (
    SELECT count(*) FROM review_queue
    WHERE reason = 'sample' AND entered_at > now() - interval '1 hour'))
ON CONFLICT (request_id) DO NOTHING
RETURNING request_id
"""


def enter(
    session: Session,
    request_ids: Collection[str],
    *,
    band: float,
    sample_rate: float,
    sample_per_hour: int,
) -> dict[str, int]:
    """Put the photos of `request_ids` that a rule picks in the queue; how many per reason.

    Only stored photos that succeeded are judged; a photo already in the queue (open or
    decided) keeps its entry, so a redelivered batch enters nothing twice. Rules, in
    order: a mapped photo with a counted region whose strongest tile is within 0.5 +-
    `band`, or with crack tiles but no region that counts, is `borderline_map`; a crack
    probability within the band is `uncertain` (band 0 turns both off); a photo whose
    verdict differs from its asset's previous inspection (a crack after none; no crack in
    an inspection after a crack) is `asset_changed`. Confident photos, those no rule
    picked, are drawn at `sample_rate`;
    at most `sample_per_hour` enter as `sample` in any hour, across every worker (an
    advisory lock held to the end of the caller's transaction).
    """
    if not request_ids:
        return {}
    params = {"ids": list(request_ids), "band": band, "rate": sample_rate}
    found = session.execute(text(_RULES), params).all()
    counts: dict[str, int] = {}
    drawn = []
    for request_id, reason in found:
        if reason == "sample":
            drawn.append(request_id)
        else:
            counts[reason] = counts.get(reason, 0) + 1
    if drawn and sample_per_hour > 0:
        session.execute(select(func.pg_advisory_xact_lock(SAMPLE_LOCK)))
        sampled = session.scalars(text(_SAMPLE), {"ids": drawn, "cap": sample_per_hour}).all()
        if sampled:
            counts["sample"] = len(sampled)
    return counts


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
