"""Asset metadata on results and the per-asset view crackq_assets_v1 (migration 0009)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import Any

from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session

from db import assets, results
from db.tables import Result
from harness.database import throwaway_database
from tests.conftest import PG_ADMIN_URL
from worker.migrate import downgrade, upgrade

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
ASSET_VIEW_COLUMNS = [
    "asset_id",
    "inspections",
    "photos",
    "queued_photos",
    "failed_photos",
    "first_seen_at",
    "latest_inspection_id",
    "latest_inspected_at",
    "latest_request_id",
    "latest_label",
    "latest_crack_probability",
    "latest_crack_area_fraction",
    "latest_photos",
    "first_crack_seen_at",
    "previous_inspection_id",
    "previous_inspected_at",
    "previous_label",
    "previous_crack_area_fraction",
    "new_crack",
    "trend",
]


def day(n: int) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def photo(
    session: Session,
    asset: str | None,
    label: str | None,
    *,
    inspection: str | None = None,
    captured: dt.datetime | None = None,
    submitted: dt.datetime | None = None,
    p: float | None = None,
    area: float | None = None,
    status: str = "succeeded",
) -> str:
    request_id = f"r-{uuid.uuid4().hex[:8]}"
    if p is None and label is not None:
        p = 0.9 if label == "crack" else 0.1
    session.add(
        Result(
            request_id=request_id,
            image_ref=f"/photos/{request_id}.jpg",
            status=status,
            label=label if status == "succeeded" else None,
            crack_probability=p if status == "succeeded" else None,
            crack_area_fraction=area,
            asset_id=asset,
            inspection_id=inspection,
            captured_at=captured,
            submitted_at=submitted,
        )
    )
    session.flush()
    return request_id


def view(session: Session) -> dict[str, dict[str, Any]]:
    return {row["asset_id"]: row for row in assets.list_assets(session, limit=None)}


def test_a_crack_in_the_second_inspection_is_new_and_first_seen_there(db_session) -> None:
    s = db_session
    photo(s, "pier-1", "no_crack", inspection="2026-01", captured=day(0))
    photo(s, "pier-1", "no_crack", inspection="2026-01", captured=day(0) + dt.timedelta(hours=1))
    crack = photo(s, "pier-1", "crack", inspection="2026-02", captured=day(31), p=0.8)
    photo(s, "pier-1", "no_crack", inspection="2026-02", captured=day(30))
    photo(s, "pier-1", None, inspection="2026-02", captured=day(31), status="queued")
    photo(s, "pier-1", None, inspection="2026-02", captured=day(31), status="failed")
    photo(s, None, "crack", captured=day(40))  # untagged rows are no asset

    rows = view(s)
    assert list(rows) == ["pier-1"]
    row = rows["pier-1"]
    assert list(row) == ASSET_VIEW_COLUMNS
    assert row["inspections"] == 2
    assert (row["photos"], row["queued_photos"], row["failed_photos"]) == (6, 1, 1)
    assert row["first_seen_at"] == day(0)
    # several photos, one of them cracked: the inspection is crack, shown by that photo
    assert row["latest_inspection_id"] == "2026-02"
    assert row["latest_inspected_at"] == day(30)
    assert row["latest_label"] == "crack"
    assert row["latest_request_id"] == crack
    assert row["latest_crack_probability"] == 0.8
    assert row["latest_photos"] == 2  # the classified ones
    assert row["first_crack_seen_at"] == day(31)
    assert row["previous_inspection_id"] == "2026-01"
    assert row["previous_label"] == "no_crack"
    assert row["new_crack"] is True and row["trend"] == "new_crack"


def test_trends_across_inspections(db_session) -> None:
    s = db_session
    # no inspection ids and no capture time: each photo is an inspection, by submitted_at
    photo(s, "growing", "crack", submitted=day(1), area=0.1)
    photo(s, "growing", "crack", submitted=day(2), area=0.3)
    photo(s, "steady", "crack", captured=day(1), area=0.3)
    photo(s, "steady", "crack", captured=day(2), area=0.3)
    photo(s, "cleared", "crack", captured=day(1))
    photo(s, "cleared", "no_crack", captured=day(2))
    photo(s, "clean", "no_crack", captured=day(1))
    photo(s, "clean", "no_crack", captured=day(2))
    photo(s, "once", "crack", captured=day(1))
    photo(s, "waiting", None, captured=day(1), status="queued")
    # captured_at orders inspections, whenever the photos were sent
    photo(s, "late", "crack", captured=day(5), submitted=day(6))
    photo(s, "late", "no_crack", captured=day(1), submitted=day(9))

    rows = view(s)
    trends = {a: (r["trend"], r["new_crack"]) for a, r in rows.items()}
    assert trends == {
        "growing": ("growing", False),
        "steady": ("crack", False),
        "cleared": ("cleared", False),
        "clean": ("no_crack", False),
        "once": (None, False),  # nothing to compare with
        "waiting": (None, False),
        "late": ("new_crack", True),
    }
    assert rows["growing"]["first_crack_seen_at"] == day(1)
    assert rows["growing"]["previous_crack_area_fraction"] == 0.1
    assert rows["cleared"]["first_crack_seen_at"] == day(1)
    assert rows["clean"]["first_crack_seen_at"] is None
    assert rows["waiting"]["inspections"] == 0 and rows["waiting"]["latest_label"] is None
    assert rows["late"]["latest_inspected_at"] == day(5)
    # newest inspection first; assets without a classified photo last
    order = [r["asset_id"] for r in assets.list_assets(s)]
    assert order[0] == "late" and order[-1] == "waiting"
    assert [r["asset_id"] for r in assets.list_assets(s, new_crack=True)] == ["late"]
    assert {r["asset_id"] for r in assets.list_assets(s, label="no_crack")} == {"cleared", "clean"}


def test_an_assets_inspections_oldest_first(db_session) -> None:
    s = db_session
    photo(s, "pier-2", "crack", inspection="b", captured=day(2), area=0.2)
    photo(s, "pier-2", "no_crack", inspection="b", captured=day(2))
    photo(s, "pier-2", "no_crack", inspection="a", captured=day(1))
    photo(s, "pier-2", None, inspection="c", captured=day(3), status="queued")
    timeline = assets.inspections(s, "pier-2")
    assert [(i["inspection_id"], i["label"], i["photos"]) for i in timeline] == [
        ("a", "no_crack", 1),
        ("b", "crack", 2),
        ("c", None, 1),
    ]
    assert timeline[1]["crack_photos"] == 1 and timeline[1]["crack_area_fraction"] == 0.2
    assert assets.get_asset(s, "pier-2")["latest_inspection_id"] == "b"  # type: ignore[index]
    assert assets.get_asset(s, "nothing") is None and assets.inspections(s, "nothing") == []


def test_queued_asset_fields_survive_the_outcome_and_a_redelivery(db_session) -> None:
    s = db_session
    meta = {"camera": "drone-3", "gps": [47.1, 8.5], "note": "north face, \"wet\", 'é'"}
    tags = {"asset_id": "pipe-9", "inspection_id": "i-1", "captured_at": day(3), "metadata": meta}
    queued = {"request_id": "q-1", "image_ref": "/p.jpg", "batch_id": "b", **tags}
    assert results.insert_queued(s, [queued]) == {"q-1"}
    # a lost message is re-sent from its queued row (self-heal, crackq requeue): with its fields
    [stale] = results.stale_queued(s, -60, 10)
    assert {k: stale[k] for k in tags} == tags
    # a worker's outcome row carries the message's fields; none of them may be lost
    outcome = {"request_id": "q-1", "image_ref": "/p.jpg", "status": "succeeded"}
    outcome.update(label="crack", confidence=0.9, crack_probability=0.9, metadata=None)
    assert results.write_outcomes(s, [outcome]) == 1
    assert results.write_outcomes(s, [{**outcome, **tags, "metadata": {"x": 1}}]) == 0
    # a row first written by its outcome (no queued row) stores the fields too
    results.write_outcomes(s, [{**outcome, **tags, "request_id": "o-1"}])
    s.expire_all()
    for request_id in ("q-1", "o-1"):
        row = s.scalars(select(Result).where(Result.request_id == request_id)).one()
        assert (row.asset_id, row.inspection_id, row.captured_at) == ("pipe-9", "i-1", day(3))
        assert row.asset_metadata == meta
    public = s.execute(
        text("SELECT asset_id, metadata->>'camera' FROM crackq_results_v1 WHERE request_id='q-1'")
    ).one()
    assert tuple(public) == ("pipe-9", "drone-3")


def _can_read(url: str, name: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = text("SELECT has_table_privilege('crackq_reporting', :t, 'SELECT')")
            return bool(conn.scalar(query, {"t": name}))
    finally:
        engine.dispose()


def test_migration_0009_goes_down_and_up_keeping_the_public_view() -> None:
    name = f"crackq_mig9_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with throwaway_database(PG_ADMIN_URL, name, migrate=False) as url:
        upgrade(url, "0009")
        engine = create_engine(url)
        found = inspect(engine)
        view_v1 = [c["name"] for c in found.get_columns("crackq_results_v1")]
        assert view_v1[20:] == ["asset_id", "inspection_id", "captured_at", "metadata"]
        assert [c["name"] for c in found.get_columns("crackq_assets_v1")] == ASSET_VIEW_COLUMNS
        assert _can_read(url, "crackq_assets_v1") and _can_read(url, "crackq_results_v1")
        downgrade(url, "0008")
        engine.dispose()
        found = inspect(engine)
        assert "crackq_assets_v1" not in found.get_view_names()
        assert len(found.get_columns("crackq_results_v1")) == 20
        assert "asset_id" not in {c["name"] for c in found.get_columns("results")}
        assert _can_read(url, "crackq_results_v1")  # the recreated view is granted again
        upgrade(url, "0009")
        engine.dispose()
        assert _can_read(url, "crackq_assets_v1")
        engine.dispose()
