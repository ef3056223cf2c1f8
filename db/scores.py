"""The score history: every model version's answer per photo, and re-scoring stored rows."""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import String

from db.staging import copy_into_stage
from db.tables import Result, ResultScore

# What a score is, on a results row and in its history row alike.
SCORE_COLUMNS = (
    "label",
    "confidence",
    "crack_probability",
    "mode",
    "tiles",
    "crack_tiles",
    "crack_area_fraction",
    "crack_regions",
)
RESCORE_COLUMNS = ("request_id", "status", "model_version", *SCORE_COLUMNS)


def record_staged(session: Session, stage: str, ids: Collection[str], source: str) -> int:
    """History rows for the succeeded rows of `stage` (a results stage) whose ids are `ids`.

    Same transaction as the write that staged them. ON CONFLICT DO NOTHING: a version's
    weights never change (sha256-pinned), so a second score of the same (request id,
    version) pair is the same answer; keeping the first keeps a redelivery a no-op and
    `source` truthful (the live answer stays `live`).
    """
    if not ids:
        return 0
    stmt = text(_record_sql(stage)).bindparams(bindparam("ids", type_=ARRAY(String)))
    result = session.execute(stmt, {"ids": list(ids), "source": source})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@functools.cache
def _record_sql(stage: str) -> str:
    cols = ", ".join(SCORE_COLUMNS)
    return (
        f"INSERT INTO result_scores (request_id, model_version, {cols}, source) "
        f"SELECT DISTINCT ON (request_id) request_id, model_version, {cols}, :source "
        f"FROM {stage} JOIN unnest(:ids) AS written(request_id) USING (request_id) "
        "WHERE status = 'succeeded' AND label IS NOT NULL AND model_version IS NOT NULL "
        "ON CONFLICT (request_id, model_version) DO NOTHING"
    )


def rescore_outcomes(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Overwrite succeeded rows' scores with re-scored ones; the ids changed.

    Only a row that is `succeeded` and not already answered by the row's version changes
    (a redelivered re-score message changes nothing); a re-score that failed (the photo
    gone, say) leaves the stored score as it was. Only the score, its version and the map
    summary change: the live timings (submitted_at .. finished_at) stay the live ones.
    Every changed row gets its history row (source `rescore`) in this transaction.
    """
    if not rows:
        return set()
    stage = copy_into_stage(session, "results", RESCORE_COLUMNS, rows)
    changed = set(session.scalars(text(_rescore_sql(stage))))
    record_staged(session, stage, changed, "rescore")
    return changed


@functools.cache
def _rescore_sql(stage: str) -> str:
    sets = ", ".join(f"{c} = s.{c}" for c in (*SCORE_COLUMNS, "model_version"))
    return (
        f"UPDATE results r SET {sets}, updated_at = now() FROM {stage} s "
        "WHERE r.request_id = s.request_id AND r.status = 'succeeded' "
        "AND s.status = 'succeeded' AND r.model_version IS DISTINCT FROM s.model_version "
        "RETURNING r.request_id"
    )


def rescored_ids(session: Session, request_ids: Collection[str], version: str) -> set[str]:
    """Those of `request_ids` a re-score with `version` must skip: rows not `succeeded`,
    or already answered by `version`."""
    if not request_ids:
        return set()
    stmt = select(Result.request_id).where(
        Result.request_id.in_(list(request_ids)),
        (Result.status != "succeeded") | (Result.model_version == version),
    )
    return set(session.scalars(stmt))


def history(session: Session, request_id: str) -> list[ResultScore]:
    """Every version's answer for one photo, oldest first."""
    stmt = (
        select(ResultScore)
        .where(ResultScore.request_id == request_id)
        .order_by(ResultScore.scored_at, ResultScore.model_version)
    )
    return list(session.scalars(stmt))
