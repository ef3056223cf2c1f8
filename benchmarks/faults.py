"""Delivery faults against real processes: each injects one, then counts rows lost or duplicated."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from benchmarks.fault_rig import (
    MAX_INFLIGHT,
    QUEUE,
    REQUEUE_LINE,
    RETRY_LINE,
    UNACKED,
    WRITE_ATTEMPTS,
    WRITE_BACKOFF_S,
    Rig,
    alive,
    can_connect,
    final_rows,
    fresh_broker,
    in_broker,
    new_ids,
    outcome,
    producer_app,
    set_connections,
    snapshot,
    submit,
    worker_env,
)
from benchmarks.poison import poison_in_batch
from benchmarks.redis_server import RedisServer, wait_until
from tests.procs import READY, worker

log = logging.getLogger(__name__)


def kill9_mid_batch(
    rig: Rig, n: int = 80, visibility_timeout_s: int = 10, timeout_s: float = 180
) -> dict[str, Any]:
    """SIGKILL the worker once some rows are stored; a fresh worker must finish every image.

    `crackq worker` exec()s Celery (os.execvpe), so the pid we started is the Celery worker
    itself, threads pool and all: no child holds messages, the kill takes them all at once.
    """
    fault = "kill9_mid_batch"
    broker = fresh_broker(rig.broker_url)
    app = producer_app(rig.broker_url, visibility_timeout_s)
    batch, ids = new_ids(fault, n)
    submit(app, rig.engine, rig.refs(n), ids, batch)
    env = worker_env(rig, visibility_timeout_s)
    with worker(rig.tmp, f"{batch}-a", env=env) as first:
        first.wait_for_log(READY, 300)
        assert first.proc is not None
        pid = first.proc.pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        # Kill while the worker holds every remaining message, unacked, mid-batch. Not while
        # a BRPOP is carrying one: kombu's Redis transport pops a message before it records
        # it as unacked, and a SIGKILL inside that window loses the message (its row stays
        # `queued`, and `crackq submit` of the same ids sends it again). See README.
        wait_until(
            lambda: broker.llen(QUEUE) == 0 and 0 < final_rows(rig.engine, ids) < n, 120, step=0.02
        )
        at_kill, held = final_rows(rig.engine, ids), int(broker.hlen(UNACKED))
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would: no warm shutdown, no restore
        killed = time.monotonic()
    # kombu's Redis transport emulates acks: on delivery each message is copied into the
    # `unacked` hash, its delivery time into the `unacked_index` sorted set, and an ack
    # deletes both. A clean shutdown pushes a channel's unacked messages back to their queue;
    # SIGKILL leaves them in the hash. Any consumer's QoS.restore_visible() later pushes back
    # those delivered more than visibility_timeout ago: once when its event loop starts, then
    # every unacked_restore_interval (10 s) x unacked_restore_throttle (10) = 100 s. So the
    # fresh worker starts once the timeout has run out, as a restart policy with a delay would,
    # and its first sweep returns every message the dead one held.
    time.sleep(max(0.0, visibility_timeout_s + 1 - (time.monotonic() - killed)))
    with worker(rig.tmp, f"{batch}-b", env=env) as second:
        second.wait_for_log(READY, 300)
        done = wait_until(lambda: final_rows(rig.engine, ids) == n, timeout_s)
        recovered_s = time.monotonic() - killed
        ok = alive(second) and done
    app.close()
    return outcome(
        fault,
        rig.engine,
        ids,
        ok and held > 0 and at_kill < n,
        killed=f"pid {pid} ({'celery' if 'celery' in cmdline else cmdline[:60]})",
        rows_at_kill=at_kill,
        unacked_at_kill=held,
        exercised=held > 0 and at_kill < n,
        recovered_s=round(recovered_s, 1),
    )


# --- b. Redis restart ---------------------------------------------------------------------


def redis_restart(
    rig: Rig,
    n: int = 80,
    kill: bool = False,
    down_s: float = 8.0,
    visibility_timeout_s: int = 6,
    timeout_s: float = 180,
) -> dict[str, Any]:
    """Stop the broker mid-run (SHUTDOWN, or SIGKILL), start it again on the same port and dir.

    The worker must reconnect by itself (same pid) and a second wave goes in after the
    restart. Redis stays down longer than the visibility timeout, so the reconnecting
    worker's first restore sweep returns the messages it held when the broker went away.
    """
    fault = "redis_restart_sigkill" if kill else "redis_restart"
    batch, ids = new_ids(fault, n)
    half = n // 2
    server = RedisServer(rig.tmp / f"{batch}-redis")
    server.start()
    app = producer_app(server.url, visibility_timeout_s)
    env = worker_env(rig, visibility_timeout_s, CRACKQ_BROKER_URL=server.url)
    try:
        # The first wave waits in Redis while the worker starts: by the time the server goes
        # down it has long been written to the AOF (everysec fsyncs once a second, and even a
        # slow fsync defers the write(2) by 2 s at most), so even SIGKILL cannot lose it.
        submit(app, rig.engine, rig.refs(half), ids[:half], batch)
        with worker(rig.tmp, batch, env=env) as w:
            w.wait_for_log(READY, 300)
            assert w.proc is not None
            pid = w.proc.pid
            wait_until(lambda: final_rows(rig.engine, ids) > 0, 120, step=0.05)
            before = in_broker(server.url)
            at_stop = final_rows(rig.engine, ids)
            if kill:
                server.kill()
            else:
                server.shutdown()
            stopped = time.monotonic()
            time.sleep(down_s)
            server.start()
            after = in_broker(server.url)  # what the AOF brought back
            submit(app, rig.engine, rig.refs(n)[half:], ids[half:], batch)
            done = wait_until(lambda: final_rows(rig.engine, ids) == n, timeout_s)
            recovered_s = time.monotonic() - stopped
            same = alive(w) and w.proc.pid == pid
            reconnects = len(re.findall(r"Connected to redis://", w.log())) - 1
    finally:
        app.close()
        server.stop()
    return outcome(
        fault,
        rig.engine,
        ids,
        done and same and reconnects >= 1,
        rows_at_stop=at_stop,
        messages_before_stop=before,
        messages_after_restart=after,
        worker_pid_unchanged=same,
        reconnects=reconnects,
        exercised=before > 0,
        recovered_s=round(recovered_s, 1),
    )


# --- c. PostgreSQL refuses connections ----------------------------------------------------


def postgres_refusal(
    rig: Rig,
    n: int = 80,
    outage_s: float = 20.0,
    visibility_timeout_s: int = 120,
    timeout_s: float = 180,
) -> dict[str, Any]:
    """PostgreSQL refuses the test database for `outage_s` right after a submission.

    The worker must keep its pid, ack nothing it could not store (so every image ends with
    one row after the outage) and back off: a bounded number of retry lines. The outage
    outlasts write_rows' six attempts (15.5 s), so the StorageUnavailable -> requeue path runs.
    The visibility timeout is long on purpose: a batch retrying its write is not a dead one.
    """
    fault = "postgres_refusal"
    fresh_broker(rig.broker_url)
    app = producer_app(rig.broker_url, visibility_timeout_s)
    batch, ids = new_ids(fault, n)
    database = str(rig.engine.url.database)
    admin = create_engine(rig.engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with worker(rig.tmp, batch, env=worker_env(rig, visibility_timeout_s)) as w:
            w.wait_for_log(READY, 300)
            assert w.proc is not None
            pid = w.proc.pid
            submit(app, rig.engine, rig.refs(n), ids, batch)
            try:
                set_connections(admin, database, allow=False)  # the first batch is in the model
                refused = time.monotonic()
                really_down = not can_connect(rig.engine)
                while time.monotonic() - refused < outage_s and alive(w):
                    time.sleep(0.5)
            finally:
                set_connections(admin, database, allow=True)
            allowed = time.monotonic()
            at_allow = final_rows(rig.engine, ids)
            done = wait_until(lambda: final_rows(rig.engine, ids) == n, timeout_s)
            recovered_s = time.monotonic() - allowed
            same = alive(w) and w.proc.pid == pid
            text_log = w.log()
    finally:
        admin.dispose()
        app.close()
    retries = len(re.findall(RETRY_LINE, text_log))
    requeues = len(re.findall(REQUEUE_LINE, text_log))
    # At most MAX_INFLIGHT batches retry at once, WRITE_ATTEMPTS tries per 15.5 s backoff
    # cycle; a busy loop would log hundreds of lines in the same time.
    limit = MAX_INFLIGHT * WRITE_ATTEMPTS * (int(outage_s // WRITE_BACKOFF_S) + 2)
    return outcome(
        fault,
        rig.engine,
        ids,
        done and same and really_down and 0 < retries <= limit,
        outage_s=outage_s,
        refused=really_down,
        retry_lines=retries,
        retry_limit=limit,
        requeued_batches=requeues,
        rows_at_reallow=at_allow,
        worker_pid_unchanged=same,
        exercised=retries > 0,
        recovered_s=round(recovered_s, 1),
    )


# --- d. duplicate delivery ----------------------------------------------------------------


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
            ok = done and drained and unchanged and alive(w)
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


# --- e. malformed and pickled messages ----------------------------------------------------


class Boom:
    """Unpickling this would create a file: proof that a payload was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def malformed_and_pickle(rig: Rig, timeout_s: float = 120) -> dict[str, Any]:
    """Malformed kwargs and a pickle payload become dead letters; a good message still runs."""
    from db.tables import DeadLetter
    from worker.app import CLASSIFY_TASK

    fault = "malformed_and_pickle"
    fresh_broker(rig.broker_url)
    app = producer_app(rig.broker_url, 30)
    batch, (good,) = new_ids(fault, 1)
    marker = rig.tmp / f"{batch}-pwned"
    bad = {
        f"{batch}-missing": {},
        f"{batch}-unknown-field": {"image_ref": rig.photos[0], "colour": "red"},
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
    submit(app, rig.engine, [rig.photos[0]], [good], batch)
    letter_ids = [*bad, pickled]

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
            ok = done and alive(w)
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
    result["submitted"] += len(letter_ids)
    result["stored"] += len(recorded)
    result["lost"] += len(letter_ids) - len(set(recorded))
    result["duplicated"] += len(recorded) - len(set(recorded))
    result["survived"] = result["survived"] and result["lost"] == 0 and result["duplicated"] == 0
    return result


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "kill9_mid_batch": kill9_mid_batch,
    "redis_restart": redis_restart,
    "redis_restart_sigkill": lambda rig, **kw: redis_restart(rig, kill=True, **kw),
    "postgres_refusal": postgres_refusal,
    "duplicate_delivery": duplicate_delivery,
    "malformed_and_pickle": malformed_and_pickle,
    "poison_in_batch": poison_in_batch,
}
