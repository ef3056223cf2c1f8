"""Asset pages: every asset's latest state, and one asset's inspections over time."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from db import assets
from worker.ui.charts import area_chart
from worker.ui.web import console, render, require

router = APIRouter()


@router.get("/assets")
def asset_list(request: Request, new_crack: int = 0) -> Response:
    require(request, "viewer")
    with console(request).reading() as session:
        rows = assets.list_assets(session, new_crack=bool(new_crack), limit=500)
    return render(request, "assets.html", assets=rows, new_crack=bool(new_crack))


@router.get("/assets/{asset_id}")
def asset_page(request: Request, asset_id: str) -> Response:
    require(request, "viewer")
    with console(request).reading() as session:
        row = assets.get_asset(session, asset_id)
        timeline = assets.inspections(session, asset_id) if row else []
        latest = assets.latest_photos(session, asset_id, row) if row else []
    if row is None:
        raise HTTPException(404, f"no photo names the asset {asset_id!r}")
    return render(
        request,
        "asset.html",
        asset=row,
        timeline=list(reversed(timeline)),  # newest first, as people read a history
        chart=area_chart(timeline),
        latest=latest,
    )
