"""Faults in the messages themselves: duplicates, malformed kwargs, a pickle payload."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from harness.faults.rig import (
    QUEUE,
    UNACKED,
    Rig,
    count_refused,
    fresh_broker,
    new_ids,
    outcome,
    producer_app,
    submit,
    worker_env,
)
from harness.procs import READY, wait_until, worker
from harness.rows import final_rows, snapshot


def duplicate_delivery(rig: Rig, n: int = 40, timeout_s: float = 180) -> dict[str, Any]:
    """Each message published twice (same task id, same body), resubmitted through the producer
    API while queued, then sent again after its row is final: one row each, never rewritten.
    """
    from db import results
    from db.session import make_sessionmaker
    from worker.enqueue import send

    fault = "duplicate_delivery"
    broker = fresh_broker(rig.broker_url)
    app = producer_app(rig.broker_url, 30)
    batch, ids = new_ids(fault, n)
    at = dt.datetime.now(dt.timezone.utc)
    rows = [
        {"request_id": i, "image_ref": r, "batch_id": batch, "submitted_at": at}
        for i, r in zip(ids, rig.refs(n), strict=True)
    ]
    sessions = make_sessionmaker(rig.engine)
    with sessions() as s, s.begin():
        results.insert_queued(s, rows)
    send(app, rows)
    send(app, rows)  # byte-identical bodies, same task ids
    queued_again = submit(app, rig.engine, rig.refs(n), ids, batch).enqueued
    copies = int(broker.llen(QUEUE))
    try:
        with worker(rig.tmp, batch, env=worker_env(rig, 30)) as w:
            w.wait_for_log(READY, 300)
            done = wait_until(lambda: final_rows(rig.engine, ids) == n, timeout_s)
            first = snapshot(rig.engine, ids)
            late = submit(app, rig.engine, rig.refs(n), ids, batch)  # finished: nothing sent
            send(app, rows)  # a redelivery long after the row was stored
            drained = wait_until(
                lambda: broker.llen(QUEUE) == 0 and broker.hlen(UNACKED) == 0, timeout_s
            )
            time.sleep(1.0)
            unchanged = snapshot(rig.engine, ids) == first
            predicted = sum(int(k) for k in re.findall(r"batch of (\d+) predicted", w.log()))
            ok = done and drained and unchanged and w.alive()
    finally:
        app.close()
    return outcome(
        fault,
        rig.engine,
        ids,
        ok and queued_again == n and late.enqueued == 0 and copies == 3 * n,
        copies_queued=copies,
        resubmitted_while_queued=queued_again,
        resent_after_final=late.enqueued,
        late_copies=n,
        images_predicted=predicted,
        rows_unchanged=unchanged,
        exercised=copies == 3 * n,
    )


class Boom:
    """Unpickling this would create a file: proof that a payload was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def send_malformed(app: Any, batch: str, photo: str, marker: Path) -> list[str]:
    """Three messages with bad kwargs and one pickle payload; their task ids."""
    from worker.app import CLASSIFY_TASK

    bad = {
        f"{batch}-missing": {},
        f"{batch}-unknown-field": {"image_ref": photo, "colour": "red"},
        f"{batch}-wrong-type": {"image_ref": 42},
    }
    for task_id, kwargs in bad.items():
        app.send_task(CLASSIFY_TASK, kwargs=kwargs, task_id=task_id, queue=QUEUE)
    pickled = f"{batch}-pickled"
    app.send_task(
        CLASSIFY_TASK,
        kwargs={"image_ref": Boom(marker)},
        task_id=pickled,
        queue=QUEUE,
        serializer="pickle",
    )
    return [*bad, pickled]


def malformed_and_pickle(rig: Rig, timeout_s: float = 120) -> dict[str, Any]:
    """Malformed kwargs and a pickle payload become dead letters; a good message still runs."""
    from db.tables import DeadLetter

    fault = "malformed_and_pickle"
    fresh_broker(rig.broker_url)
    app = producer_app(rig.broker_url, 30)
    batch, (good,) = new_ids(fault, 1)
    marker = rig.tmp / f"{batch}-pwned"
    letter_ids = send_malformed(app, batch, rig.photos[0], marker)
    submit(app, rig.engine, [rig.photos[0]], [good], batch)

    def letters() -> list[str]:
        with rig.engine.connect() as conn:
            return list(
                conn.scalars(select(DeadLetter.task_id).where(DeadLetter.task_id.in_(letter_ids)))
            )

    try:
        with worker(rig.tmp, batch, env=worker_env(rig, 30)) as w:
            w.wait_for_log(READY, 300)
            done = wait_until(
                lambda: len(set(letters())) == 4 and final_rows(rig.engine, [good]) == 1,
                timeout_s,
            )
            ok = done and w.alive()
    finally:
        app.close()
    recorded = letters()
    result = outcome(
        fault,
        rig.engine,
        [good],
        ok and not marker.exists(),
        dead_letters=len(set(recorded)),
        pickle_executed=marker.exists(),
        exercised=len(set(recorded)) == len(letter_ids),
    )
    # the four refused messages count as submitted, a dead letter each as stored
    count_refused(result, len(letter_ids), len(recorded), len(set(recorded)))
    return result
