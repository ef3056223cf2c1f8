"""The worker SIGKILLed mid-run with self-healing on: a new worker finishes every photo unaided.

Unlike kill9_mid_batch, the visibility timeout stays at an hour, so kombu's own restore
never runs, and nobody calls `crackq requeue`: the second worker's upkeep thread must see
that the dead worker's holds expired, put its unacked messages back on the queue, and
re-send any message lost in kombu's BRPOP window (worker/selfheal.py).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from harness.faults.rig import (
    QUEUE,
    UNACKED,
    Rig,
    fresh_broker,
    new_ids,
    outcome,
    producer_app,
    submit,
    worker_env,
)
from harness.procs import READY, wait_until, worker
from harness.rows import final_rows

HOUR = 3600
SHORT = {  # seconds: holds published every 1, dead after 4, sweeps every 2
    "CRACKQ_HOLDS_HEARTBEAT_S": "1",
    "CRACKQ_HOLDS_TTL_S": "4",
    "CRACKQ_SWEEP_S": "2",
    "CRACKQ_REQUEUE_LOST_AFTER_S": "20",
    "CRACKQ_SELF_HEAL": "true",
}


def kill9_self_heal(rig: Rig, n: int = 80, timeout_s: float = 180) -> dict[str, Any]:
    """SIGKILL the worker while it holds messages; start another at once; count the rows."""
    fault = "kill9_self_heal"
    broker = fresh_broker(rig.broker_url)
    app = producer_app(rig.broker_url, HOUR)
    batch, ids = new_ids(fault, n)
    env = worker_env(rig, HOUR, **SHORT)
    with worker(rig.tmp, f"{batch}-a", env=env) as first:
        first.wait_for_log(READY, 300)
        submit(app, rig.engine, rig.refs(n), ids, batch)
        assert first.proc is not None
        pid = first.proc.pid
        wait_until(
            lambda: broker.llen(QUEUE) == 0 and 0 < final_rows(rig.engine, ids) < n, 120, step=0.02
        )
        at_kill, held = final_rows(rig.engine, ids), int(broker.hlen(UNACKED))
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
    with worker(rig.tmp, f"{batch}-b", env=env) as second:
        second.wait_for_log(READY, 300)
        ready_s = time.monotonic() - killed
        done = wait_until(lambda: final_rows(rig.engine, ids) == n, timeout_s)
        recovered_s = time.monotonic() - killed
        log = second.log()
        ok = second.alive() and done
    app.close()
    return outcome(
        fault,
        rig.engine,
        ids,
        ok and held > 0 and at_kill < n,
        rows_at_kill=at_kill,
        unacked_at_kill=held,
        exercised=held > 0 and at_kill < n,
        second_ready_s=round(ready_s, 1),
        recovered_s=round(recovered_s, 1),
        restore_lines=log.count("back on the queue"),
        resend_lines=log.count("whose message was lost"),
    )
