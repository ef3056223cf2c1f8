"""Asset fields through a real worker: CLI, bulk and single messages, whole and mapped photos."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from db.tables import DeadLetter, Result
from harness import images
from harness.procs import READY, worker
from tests.e2e.test_cli import crackq

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


def _queued_kwargs(redis_client) -> list[dict]:
    """The kwargs of every message waiting on the inference queue (kombu's JSON envelope)."""
    found = []
    for raw in redis_client.lrange("inference", 0, -1):
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        found.append(kwargs)
    return found


def test_asset_fields_are_sent_stored_and_reported(tmp_path: Path, sessions, redis_client) -> None:
    from worker.app import CLASSIFY_MANY_TASK, CLASSIFY_TASK, INFERENCE_QUEUE, app

    root = tmp_path / "wall"
    root.mkdir()
    for i in range(3):
        (root / f"p{i}.jpg").write_bytes(images.jpeg(227 + i, 227))
    (root / "big.jpg").write_bytes(images.jpeg(480, 480))
    meta = {"camera": "drone-3", "gps": [47.37, 8.54], "note": "north face"}

    # inspection 1 by the CLI, before any worker runs: the message carries the fields
    out = crackq(
        "submit",
        *[str(root / f"p{i}.jpg") for i in range(2)],
        "--asset-id",
        "wall-1",
        "--inspection-id",
        "visit-1",
        "--captured-at",
        "2026-01-05T09:00:00Z",
        "--metadata",
        json.dumps(meta),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    cli_ids = json.loads(out.stdout)["request_ids"]
    sent = _queued_kwargs(redis_client)
    assert len(sent) == 2 and all(k["asset_id"] == "wall-1" for k in sent), sent
    assert sent[0]["metadata"] == meta and sent[0]["captured_at"].startswith("2026-01-05T09:00")
    # a bad --metadata is refused before anything is stored or sent
    bad = crackq("submit", str(root / "p0.jpg"), "--metadata", "[1, 2]")
    assert bad.returncode == 2 and "metadata" in bad.stderr and "JSON object" in bad.stderr
    assert redis_client.llen("inference") == 2

    # inspection 2 in one bulk message: a photo classified whole and one mapped
    second = {"asset_id": "wall-1", "inspection_id": "visit-2"}
    items = [
        {"image_ref": str(root / "p2.jpg"), "request_id": "v2-whole", **second},
        {
            "image_ref": str(root / "big.jpg"),
            "request_id": "v2-map",
            "mode": "map",
            "captured_at": "2026-02-05T09:00:00+00:00",
            "metadata": {"zoom": 2},
            **second,
        },
    ]
    app.send_task(CLASSIFY_MANY_TASK, kwargs={"items": items}, queue=INFERENCE_QUEUE)
    hostile = {
        "meta-array": {"metadata": [1, 2]},
        "meta-deep": {"metadata": {"a": {"b": {"c": {"d": {}}}}}},
        "meta-huge": {"metadata": {"x": "y" * 5000}},
        "asset-long": {"asset_id": "a" * 201},
    }
    for task_id, extra in hostile.items():
        kwargs = {"image_ref": str(root / "p0.jpg"), "request_id": task_id, **extra}
        app.send_task(CLASSIFY_TASK, kwargs=kwargs, task_id=task_id, queue=INFERENCE_QUEUE)

    expected = {*cli_ids, "v2-whole", "v2-map"}
    with worker(tmp_path, "assets", env={"CRACKQ_ALLOWED_ROOTS": str(root)}) as w:
        w.wait_for_log(READY, 120)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with sessions() as s:
                rows = {r.request_id: r for r in s.scalars(select(Result))}
                letters = {d.task_id: d for d in s.scalars(select(DeadLetter))}
            done = expected <= set(rows) and all(rows[i].status != "queued" for i in expected)
            if done and len(letters) == len(hostile):
                break
            time.sleep(0.5)
        log = w.log()
    assert set(rows) == expected, log[-3000:]  # hostile messages made no row
    assert {r.status for r in rows.values()} == {"succeeded"}, log[-3000:]
    first = dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone.utc)
    for i in cli_ids:
        assert (rows[i].asset_id, rows[i].inspection_id) == ("wall-1", "visit-1")
        assert rows[i].captured_at == first and rows[i].asset_metadata == meta
    assert rows["v2-whole"].inspection_id == "visit-2" and rows["v2-whole"].asset_metadata is None
    mapped = rows["v2-map"]
    assert mapped.mode == "map" and mapped.asset_metadata == {"zoom": 2}
    assert mapped.captured_at == dt.datetime(2026, 2, 5, 9, tzinfo=dt.timezone.utc)
    assert set(letters) == set(hostile)
    assert (
        "metadata" in letters["meta-array"].reason and "JSON object" in letters["meta-array"].reason
    )
    assert "deeper than 4" in letters["meta-deep"].reason
    assert "over the limit of 4096" in letters["meta-huge"].reason
    assert "asset_id" in letters["asset-long"].reason

    listed = crackq("assets", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    [asset] = json.loads(listed.stdout)
    assert asset["asset_id"] == "wall-1" and asset["inspections"] == 2
    assert (
        asset["latest_inspection_id"] == "visit-2" and asset["previous_inspection_id"] == "visit-1"
    )
    shown = crackq("assets", "show", "wall-1")
    assert shown.returncode == 0, shown.stderr
    assert "asset wall-1: 2 inspection(s) of 4 photo(s)" in shown.stdout
    assert shown.stdout.index("visit-1") < shown.stdout.index("visit-2")
    assert crackq("assets", "show", "nothing").returncode == 1
