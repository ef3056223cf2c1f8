"""Task events on a timer (worker.eventflush): a real worker, real Redis, every event seen."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from harness import images
from harness.procs import READY, worker
from harness.rows import wait_rows
from tests.conftest import REDIS_DB

pytestmark = pytest.mark.usefixtures("clean_tables")
N = 48
HOST = "eventflush@localhost"  # the submitter's own task-sent events are not the worker's


def events_in(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The task events one published kombu message carries (one, or a task.multi list)."""
    payload = json.loads(message["data"])
    body = payload["body"]
    if payload["properties"].get("body_encoding") == "base64":
        body = base64.b64decode(body)
    decoded = json.loads(body)
    return decoded if isinstance(decoded, list) else [decoded]


def test_every_event_arrives_in_few_publishes(
    tmp_path: Path, sessions: Any, engine: Any, redis_client: Any
) -> None:
    from worker.app import app
    from worker.enqueue import submit

    root = tmp_path / "img"
    root.mkdir()
    for i in range(N):
        (root / f"{i}.jpg").write_bytes(images.jpeg(227, 227, color=(i * 5, 120, 60)))
    listener = redis_client.pubsub()
    listener.psubscribe(f"/{REDIS_DB}.celeryev*")
    env = {"CRACKQ_ALLOWED_ROOTS": str(root), "CRACKQ_EVENT_FLUSH_MS": "200"}
    with worker(tmp_path, "eventflush", env=env) as w:
        w.wait_for_log(READY, 180)
        sub = submit(app, sessions, [str(root / f"{i}.jpg") for i in range(N)])
        assert not wait_rows(engine, sub.batch_id, N, timeout_s=180).timed_out
        time.sleep(1.5)  # the last timer's flush
        publishes, events = 0, []
        while (message := listener.get_message(timeout=0.5)) is not None:
            if message["type"] != "pmessage":
                continue
            found = [e for e in events_in(message) if e.get("hostname") == HOST]
            publishes += bool(found)
            events += found
    listener.close()
    assert {e["type"] for e in events} >= {"task-received", "task-started", "task-succeeded"}
    for kind in ("task-received", "task-started", "task-succeeded"):
        seen = {e["uuid"] for e in events if e["type"] == kind}
        assert seen >= set(sub.request_ids), f"{kind} missing for some photos"
    # Celery alone publishes about one message per event: here a batch's go together
    assert publishes <= len(events) / 4, (publishes, len(events))
