"""`crackq.classify_many` fans out: one row and one batched message per item, at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from db.tables import Result
from harness import images
from harness.procs import READY, worker

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


def test_bulk_message_becomes_one_row_per_item_even_when_delivered_twice(
    tmp_path: Path, sessions
) -> None:
    from worker.app import CLASSIFY_MANY_TASK, INFERENCE_QUEUE, app

    root = tmp_path / "img"
    root.mkdir()
    refs = []
    for i in range(24):
        (root / f"{i}.jpg").write_bytes(images.jpeg(64 + i, 64))
        refs.append(str(root / f"{i}.jpg"))
    items = [{"image_ref": r} for r in refs[:12]]
    items += [{"image_ref": r, "request_id": f"own-{i}"} for i, r in enumerate(refs[12:])]
    items.append({"image_ref": str(root / "missing.jpg"), "request_id": "own-missing"})
    for _ in range(2):  # at-least-once: the same bulk message twice
        app.send_task(
            CLASSIFY_MANY_TASK,
            kwargs={"items": items, "batch_id": "bulk"},
            task_id="bulk-1",
            queue=INFERENCE_QUEUE,
        )
    expected = {f"bulk-1:{i}" for i in range(12)} | {f"own-{i}" for i in range(12)}
    expected.add("own-missing")
    with worker(tmp_path, "bulk", env={"CRACKQ_ALLOWED_ROOTS": str(root)}) as w:
        w.wait_for_log(READY, 120)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with sessions() as s:
                rows = list(s.scalars(select(Result)))
            if len(rows) >= len(expected) and all(r.status != "queued" for r in rows):
                break
            time.sleep(0.5)
        log = w.log()
    assert {r.request_id for r in rows} == expected, log[-3000:]
    assert len(rows) == len(expected), "a redelivered bulk message made a second row"
    by_id = {r.request_id: r for r in rows}
    assert by_id["own-missing"].status == "failed"
    assert by_id["own-missing"].error_code == "not_found"
    assert {r.status for r in rows if r.request_id != "own-missing"} == {"succeeded"}
    assert {r.batch_id for r in rows} == {"bulk"}
    # items ran through the batcher beside single-photo traffic, not inside the bulk task
    assert "batch of" in log and "crackq.classify_many" in log
