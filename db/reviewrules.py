"""The rules that put a batch's stored photos in the review queue (README "Review queue")."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

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
