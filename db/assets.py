"""Assets: the per-asset view crackq_assets_v1 and an asset's inspections, oldest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from db.tables import Result

VIEW = "crackq_assets_v1"


def list_assets(
    session: Session, *, new_crack: bool = False, label: str | None = None, limit: int | None = 100
) -> list[dict[str, Any]]:
    """Rows of crackq_assets_v1, latest inspection first; optionally only new cracks or a label."""
    where = ["true"]
    if new_crack:
        where.append("new_crack")
    if label is not None:
        where.append("latest_label = :label")
    sql = (
        f"SELECT * FROM {VIEW} WHERE {' AND '.join(where)} "
        "ORDER BY latest_inspected_at DESC NULLS LAST, asset_id"
        + (" LIMIT :limit" if limit is not None else "")
    )
    rows = session.execute(text(sql), {"label": label, "limit": limit})
    return [dict(row._mapping) for row in rows]


def get_asset(session: Session, asset_id: str) -> dict[str, Any] | None:
    """The crackq_assets_v1 row of one asset, or None when no row names it."""
    row = session.execute(text(f"SELECT * FROM {VIEW} WHERE asset_id = :a"), {"a": asset_id})
    found = row.first()
    return dict(found._mapping) if found else None


def inspections(session: Session, asset_id: str) -> list[dict[str, Any]]:
    """One asset's inspections in the view's order, with their photos counted by outcome.

    `label` is crack when any classified photo is, no_crack when some are classified and
    none is crack, None while none is classified yet. `strongest_request_id` is the classified
    photo with the highest crack probability (None while none is): the one to show.
    """
    seen = func.coalesce(Result.captured_at, Result.submitted_at, Result.created_at)
    lone = case((Result.inspection_id.is_(None), Result.request_id))  # a photo on its own
    ok = Result.status == "succeeded"
    stmt = (
        select(
            Result.inspection_id,
            func.min(seen).label("inspected_at"),
            func.count().label("photos"),
            func.count().filter(ok).label("classified"),
            func.count().filter(ok, Result.label == "crack").label("crack_photos"),
            func.count().filter(Result.status == "failed").label("failed"),
            func.max(Result.crack_probability).filter(ok).label("crack_probability"),
            func.max(Result.crack_area_fraction).filter(ok).label("crack_area_fraction"),
            func.min(Result.request_id).label("first_request_id"),
            func.array_agg(  # as the view picks an inspection's latest_request_id
                aggregate_order_by(
                    Result.request_id,
                    Result.crack_probability.desc().nullslast(),
                    Result.request_id,
                )
            )
            .filter(ok)[1]
            .label("strongest_request_id"),
        )
        .where(Result.asset_id == asset_id)
        .group_by(Result.inspection_id, lone)
        .order_by(func.min(seen), Result.inspection_id, lone)
    )
    timeline = []
    for row in session.execute(stmt):
        entry = dict(row._mapping)
        entry["label"] = (
            "crack" if entry["crack_photos"] else "no_crack" if entry["classified"] else None
        )
        timeline.append(entry)
    return timeline


def latest_photos(
    session: Session, asset_id: str, latest: dict[str, Any], limit: int = 24
) -> list[dict[str, Any]]:
    """The classified photos of an asset's inspection, to look at first: mapped photos
    by crack area, then the rest by crack probability. `latest` is the asset's view row
    (its latest inspection, or its latest photo when that one has no inspection id)."""
    where = (
        Result.request_id == latest["latest_request_id"]
        if latest["latest_inspection_id"] is None
        else Result.inspection_id == latest["latest_inspection_id"]
    )
    stmt = (
        select(
            Result.request_id,
            Result.label,
            Result.crack_probability,
            Result.crack_area_fraction,
            Result.mode,
            Result.image_ref,
        )
        .where(Result.asset_id == asset_id, where, Result.status == "succeeded")
        .order_by(
            (Result.mode == "map").desc(),
            Result.crack_area_fraction.desc().nullslast(),
            Result.crack_probability.desc().nullslast(),
            Result.request_id,
        )
        .limit(limit)
    )
    return [dict(row._mapping) for row in session.execute(stmt)]
