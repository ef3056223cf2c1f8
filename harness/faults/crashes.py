"""Faults that take a process away: the worker SIGKILLed mid-batch, Redis stopped and restarted."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.faults.rig import (
    QUEUE,
    UNACKED,
    Rig,
    fresh_broker,
    in_broker,
    new_ids,
    outcome,
    producer_app,
    submit,
    worker_env,
)
from harness.procs import READY, free_port, wait_until, worker
from harness.redis_server import RedisServer
from harness.rows import final_rows, queued_rows


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
        ok = second.alive() and done
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


def bounce(
    server: RedisServer, kill: bool, down_s: float, while_down: Callable[[], Any] | None = None
) -> float:
    """Stop `server` (SIGKILL or SHUTDOWN), start it again `down_s` later; when it stopped.

    `while_down` is called about twice a second meanwhile.
    """
    if kill:
        server.kill()
    else:
        server.shutdown()
    stopped = time.monotonic()
    while (left := stopped + down_s - time.monotonic()) > 0:
        if while_down is not None:
            while_down()
        time.sleep(min(0.5, max(0.0, left)))
    server.start()
    return stopped


class Readiness:
    """A worker's /readyz watched through a fault: what it said while down, when it came back."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/readyz"
        self.down: list[str] = []  # "503 broker,consuming" per probe during the outage

    def status(self) -> tuple[int, list[str]]:
        import requests

        try:
            r = requests.get(self.url, timeout=3)
        except requests.RequestException:
            return 0, ["endpoint"]
        failing = [name for name, c in r.json().get("checks", {}).items() if not c["ok"]]
        return r.status_code, failing

    def probe(self) -> None:
        code, failing = self.status()
        self.down.append(f"{code} {','.join(failing)}")

    def summary(self, since: float) -> dict[str, Any]:
        back = wait_until(lambda: self.status()[0] == 200, 60)
        return {
            "not_ready_while_down": bool(self.down) and all(d.startswith("503") for d in self.down),
            "failing_while_down": sorted({d.split(" ", 1)[1] for d in self.down}),
            "ready_again_s": round(time.monotonic() - since, 1) if back else None,
        }


def stored_or_requeued(app: Any, engine: Any, ids: list[str], timeout_s: float) -> tuple[bool, int]:
    """Wait for every row; re-send those still queued once, as `crackq requeue` does.

    kombu's documented window (README, "Known limit"): a message BRPOP handed to the worker
    just before the broker died is in neither the queue nor the unacked hash; its row stays
    queued. Returns whether every row is final, and how many messages were re-sent.
    """
    from worker.enqueue import send

    if wait_until(lambda: final_rows(engine, ids) == len(ids), timeout_s):
        return True, 0
    rows = queued_rows(engine, ids)
    send(app, rows)
    return wait_until(lambda: final_rows(engine, ids) == len(ids), 60), len(rows)


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
    port = free_port()
    readiness = Readiness(port)
    env = worker_env(
        rig, visibility_timeout_s, CRACKQ_BROKER_URL=server.url, CRACKQ_METRICS_PORT=str(port)
    )
    try:
        # The test server writes every command to its AOF before replying (appendfsync
        # always), so a SIGKILL loses no message or ack the worker already saw.
        submit(app, rig.engine, rig.refs(half), ids[:half], batch)
        with worker(rig.tmp, batch, env=env) as w:
            w.wait_for_log(READY, 300)
            assert w.proc is not None
            pid = w.proc.pid
            wait_until(lambda: final_rows(rig.engine, ids) > 0, 120, step=0.05)
            before = in_broker(server.url)
            at_stop = final_rows(rig.engine, ids)
            stopped = bounce(server, kill, down_s, readiness.probe)
            after = in_broker(server.url)  # what the AOF brought back
            submit(app, rig.engine, rig.refs(n)[half:], ids[half:], batch)
            done, requeued = stored_or_requeued(app, rig.engine, ids, timeout_s)
            recovered_s = time.monotonic() - stopped
            ready = readiness.summary(stopped)
            same = w.alive() and w.proc.pid == pid
            reconnects = len(re.findall(r"Connected to redis://", w.log())) - 1
    finally:
        app.close()
        server.stop()
    return outcome(
        fault,
        rig.engine,
        ids,
        done and same and reconnects >= 1 and ready["not_ready_while_down"],
        rows_at_stop=at_stop,
        messages_before_stop=before,
        messages_after_restart=after,
        worker_pid_unchanged=same,
        reconnects=reconnects,
        requeued=requeued,
        exercised=before > 0,
        recovered_s=round(recovered_s, 1),
        **ready,
    )
