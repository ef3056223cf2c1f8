"""Crack maps: one row of tile probabilities per mapped photo and its connected regions."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from db.tables import CrackMapRow, CrackRegionRow, Result

MAP_COLUMNS = ("width", "height", "tile", "stride", "rows", "cols", "probabilities")
REGION_COLUMNS = ("x0", "y0", "x1", "y1", "tiles", "max_probability")


def write_maps(session: Session, maps: Sequence[dict[str, Any]], written: Collection[str]) -> int:
    """Store the maps of the request ids in `written` (rows this write just made final).

    A map belongs to the first final outcome of its photo: a redelivered message whose row
    was already final writes nothing, so a stored map always matches its row. Each map is
    {request_id, model_version, width, height, tile, stride, rows, cols, probabilities
    (row-major), regions: [{x0, y0, x1, y1, tiles, max_probability}, ...]}.
    """
    mine = [m for m in maps if m["request_id"] in written]
    if not mine:
        return 0
    ids = [m["request_id"] for m in mine]
    session.execute(delete(CrackRegionRow).where(CrackRegionRow.request_id.in_(ids)))
    session.execute(delete(CrackMapRow).where(CrackMapRow.request_id.in_(ids)))
    keys = ("request_id", "model_version", *MAP_COLUMNS)
    session.execute(insert(CrackMapRow), [{k: m[k] for k in keys} for m in mine])
    regions = [
        {"request_id": m["request_id"], "region": i, **{k: r[k] for k in REGION_COLUMNS}}
        for m in mine
        for i, r in enumerate(m["regions"])
    ]
    if regions:
        session.execute(insert(CrackRegionRow), regions)
    return len(mine)


def read_map(session: Session, request_id: str) -> dict[str, Any] | None:
    """The stored map of `request_id` with its row's verdict and regions; None if unmapped."""
    found = session.execute(
        select(CrackMapRow, Result.label, Result.crack_probability, Result.image_ref)
        .join(Result, Result.request_id == CrackMapRow.request_id)
        .where(CrackMapRow.request_id == request_id)
    ).first()
    if found is None:
        return None
    row, label, crack_probability, image_ref = found
    stored = session.scalars(
        select(CrackRegionRow)
        .where(CrackRegionRow.request_id == request_id)
        .order_by(CrackRegionRow.region)
    )
    regions = [{k: getattr(r, k) for k in REGION_COLUMNS} for r in stored]
    values = list(row.probabilities)
    grid = [values[r * row.cols : (r + 1) * row.cols] for r in range(row.rows)]
    return {
        "request_id": row.request_id,
        "image_ref": image_ref,
        "model_version": row.model_version,
        **{k: getattr(row, k) for k in MAP_COLUMNS if k != "probabilities"},
        "probabilities": grid,
        "regions": regions,
        "label": label,
        "crack_probability": crack_probability,
    }
