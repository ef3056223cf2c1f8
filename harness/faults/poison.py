"""Poison messages mixed into a batch of good ones: each poison is one dead letter, nothing stalls.

Every message here reached a real worker through Redis as a hostile producer would send it:
raw protocol-2 bodies and headers, published with kombu, not through crackq's own producer.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Engine, func, select

from harness.faults.rig import (
    QUEUE,
    Rig,
    count_refused,
    fresh_broker,
    in_broker,
    new_ids,
    outcome,
    producer_app,
    submit,
    worker_env,
)
from harness.procs import READY, wait_until, worker
from harness.rows import final_rows

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
# long enough that a stalled batch could only come back by redelivery, after the run
VISIBILITY_TIMEOUT_S = 600


def poisons(prefix: str, photo: str) -> list[tuple[str, dict[str, Any], str | bytes, str]]:
    """(label, headers, body, content type): every kind of message that once stalled a batch."""
    from worker.app import CLASSIFY_MANY_TASK, CLASSIFY_TASK

    def v2(task_id: str, args: Any, kwargs: Any, task: str = CLASSIFY_TASK) -> tuple:
        return {"task": task, "id": task_id}, json.dumps([args, kwargs, EMBED])

    ok = {"image_ref": photo}
    cases: list[tuple[str, dict[str, Any], str | bytes, str]] = []

    def add(label: str, headers: dict[str, Any], body: str | bytes, ctype: str = "json") -> None:
        cases.append((label, headers, body, f"application/{ctype}"))

    add("task id over 200 chars, no request_id", *v2(f"{prefix}-long-" + "x" * 300, [], ok))
    add("args a number", *v2(f"{prefix}-args5", 5, {**ok, "request_id": f"{prefix}-a5"}))
    add("args true", *v2(f"{prefix}-argstrue", True, {**ok, "request_id": f"{prefix}-at"}))
    add("NUL in request_id", *v2(f"{prefix}-nulid", [], {**ok, "request_id": "r\x00id"}))
    add("NUL in image_ref", *v2(f"{prefix}-nulref", [], {"image_ref": photo + "\x00.jpg"}))
    add("NUL in an unknown field", *v2(f"{prefix}-nulfield", [], {**ok, "co\x00lour": "r\x00ed"}))
    add("submitted_at year 1", *v2(f"{prefix}-year1", [], {**ok, "submitted_at": "0001-01-01"}))
    add("submitted_at year 9999", *v2(f"{prefix}-y9999", [], {**ok, "submitted_at": "9999-12-31"}))
    nested: Any = "deep"
    for _ in range(200):
        nested = [nested]
    add("200-deep nesting", *v2(f"{prefix}-deep", [], {**ok, "x": nested}))
    headers, _ = v2(f"{prefix}-nan", [], {})
    add("NaN and a lone surrogate", headers, '[[], {"image_ref": "\\ud800", "n": NaN}, {}]')
    add("body not a list", {"task": CLASSIFY_TASK, "id": f"{prefix}-notlist"}, '"hello"')
    add("headers without an id", {"task": CLASSIFY_TASK}, json.dumps([[], ok, EMBED]))
    add(
        "pickle with NUL in its id header",
        {"task": CLASSIFY_TASK, "id": f"{prefix}-nul\x00hdr"},
        b"\x80\x04junk",
        "x-python-serialize",
    )
    many = {"items": [ok] * 3}
    add(
        "bulk, derived ids too long",
        *v2(f"{prefix}-bulk-" + "y" * 195, [], many, CLASSIFY_MANY_TASK),
    )
    return cases


def publish_raw(app: Any, cases: list[tuple[str, dict[str, Any], str | bytes, str]]) -> None:
    with app.connection_for_write() as conn:
        producer = conn.Producer()
        for _label, headers, body, content_type in cases:
            producer.publish(
                body,
                exchange="",
                routing_key=QUEUE,
                headers=headers,
                content_type=content_type,
                content_encoding="utf-8" if isinstance(body, str) else "binary",
            )


def dead_letters_since(engine: Engine, since: Any) -> int:
    """Dead letters recorded after `since` (a database timestamp)."""
    from db.tables import DeadLetter

    with engine.connect() as conn:
        query = select(func.count()).select_from(DeadLetter).where(DeadLetter.received_at > since)
        return int(conn.scalar(query) or 0)


def poison_in_batch(rig: Rig, n: int = 40, timeout_s: float = 120) -> dict[str, Any]:
    """Good photos with every poison between them: every good row lands, each poison is a
    dead letter, the queue and the unacked hash end empty, the worker keeps serving."""
    fault = "poison_in_batch"
    fresh_broker(rig.broker_url)
    app = producer_app(rig.broker_url, VISIBILITY_TIMEOUT_S)
    batch, ids = new_ids(fault, n)
    cases = poisons(batch, rig.photos[0])
    with rig.engine.connect() as conn:
        since = conn.scalar(select(func.now()))

    def letters() -> int:
        return dead_letters_since(rig.engine, since)

    half = n // 2
    try:
        submit(app, rig.engine, rig.refs(n)[:half], ids[:half], batch)
        publish_raw(app, cases)
        submit(app, rig.engine, rig.refs(n)[half:], ids[half:], batch)
        env = worker_env(rig, VISIBILITY_TIMEOUT_S, CRACKQ_BATCH_SIZE="32")
        with worker(rig.tmp, batch, env=env) as w:
            w.wait_for_log(READY, 300)
            ready = time.monotonic()
            done = wait_until(
                lambda: final_rows(rig.engine, ids) == n and letters() >= len(cases), timeout_s
            )
            settled_s = time.monotonic() - ready
            drained = wait_until(lambda: in_broker(rig.broker_url) == 0, 10)
            # the worker still serves after the poison: one more photo, end to end
            _, (after,) = new_ids(f"{fault}-after", 1)
            submit(app, rig.engine, [rig.photos[1]], [after], batch)
            serves = wait_until(lambda: final_rows(rig.engine, [after]) == 1, 60)
            ok = done and drained and serves and w.alive()
    finally:
        app.close()
    stored = letters()
    result = outcome(
        fault,
        rig.engine,
        ids,
        ok,
        poison_messages=len(cases),
        dead_letters=stored,
        settled_s=round(settled_s, 1),
        left_in_broker=in_broker(rig.broker_url),
        serves_after=serves,
        exercised=stored > 0,
    )
    # each poison counts as submitted, its dead letter as stored
    count_refused(result, len(cases), stored, min(stored, len(cases)))
    return result
