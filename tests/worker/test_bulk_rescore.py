"""`crackq.classify_many` items that name a `rescore_version` go out as re-score messages."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select

from db.tables import Result

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


def _queued_kwargs(redis_client) -> dict[str, dict]:
    """task id -> kwargs of every message waiting on the inference queue."""
    found = {}
    for raw in redis_client.lrange("inference", 0, -1):
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        found[envelope["headers"]["id"]] = json.loads(body)[1]
    return found


def test_a_bulk_items_rescore_version_reaches_its_message(sessions, redis_client) -> None:
    from worker.tasks import classify_many

    with sessions() as s, s.begin():  # the stored row the re-score overwrites
        s.add(Result(request_id="old-1", image_ref="/p/old.jpg", status="succeeded"))
    items = [
        {"image_ref": "/p/new.jpg", "request_id": "new-1"},
        {"image_ref": "/p/old.jpg", "request_id": "old-1", "rescore_version": "v7"},
        {"image_ref": "/p/map.jpg", "request_id": "old-2", "rescore_version": "v7",
         "mode": "map"},
    ]  # fmt: skip
    outcome = classify_many.apply(kwargs={"items": items}, task_id="bulk-r").get()
    assert outcome == {"items": 3, "enqueued": 3}
    sent = _queued_kwargs(redis_client)
    assert sent["new-1"]["image_ref"] == "/p/new.jpg" and "rescore_version" not in sent["new-1"]
    assert sent["old-1@v7"] == {
        "image_ref": "/p/old.jpg", "request_id": "old-1", "rescore_version": "v7"
    }  # fmt: skip
    assert sent["old-2@v7"]["mode"] == "map" and sent["old-2@v7"]["rescore_version"] == "v7"
    with sessions() as s:
        rows = {r.request_id: r.status for r in s.scalars(select(Result))}
    # only the live item is queued; the re-scored row stays as it was stored
    assert rows == {"new-1": "queued", "old-1": "succeeded"}
