"""Stopping a worker as systemd would, and reading what it left: crashes, the broker, the rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from harness.faults.rig import QUEUE, UNACKED, Rig
from harness.procs import Proc
from harness.rows import final_rows, queued_ids

CRASH_MARKERS = ("Fatal Python error", "Segmentation fault")
SWITCHED_INT8 = r"switched model \S+ -> \S+ \(cpu-openvino-int8\)"
SEGV = (-signal.SIGSEGV, 128 + signal.SIGSEGV)
POLL_S = 0.5


def crash_stacks(log_text: str, limit: int = 12_000) -> str | None:
    """The faulthandler report in a worker's log (every thread's Python stack), if any."""
    at = min((i for i in (log_text.find(m) for m in CRASH_MARKERS) if i >= 0), default=-1)
    return None if at < 0 else log_text[at : at + limit]


def broker_ids(client: Any) -> tuple[list[str], list[str]]:
    """Task ids (= request ids) of the messages in the queue, and of those delivered unacked."""

    def task_id(payload: Any) -> str:
        return str(payload.get("headers", {}).get("id") or payload.get("properties", {}))

    queued = [task_id(json.loads(raw)) for raw in client.lrange(QUEUE, 0, -1)]
    unacked = [task_id(json.loads(raw)[0]) for raw in client.hvals(UNACKED)]
    return queued, unacked


def leftovers(rig: Rig, client: Any, ids: list[str]) -> dict[str, Any]:
    """What a stopped worker left: every id without a final row must be back in the queue."""
    queued, unacked = broker_ids(client)
    waiting = queued_ids(rig.engine, ids)
    return {
        "final_rows": final_rows(rig.engine, ids),
        "rows_queued": len(waiting),
        "in_queue": len(queued),
        "unacked": len(unacked),
        # a queued row whose message is neither in the queue nor anywhere a restart finds
        "stranded": len(waiting - set(queued)),
        # messages back in the queue although their row is stored (harmless: a no-op later)
        "requeued_finished": len(set(queued) & set(ids) - waiting),
    }


def set_promoted(engine: Engine, version: str | None, checkpoint: Path | None = None) -> None:
    """Promote `version` (registered on `checkpoint` first), or retire every promoted one."""
    from db import registry
    from db.session import make_sessionmaker
    from models.checkpoints import sha256_file

    with make_sessionmaker(engine)() as s, s.begin():
        if version is None:
            s.execute(
                text("UPDATE model_versions SET status = 'retired' WHERE status = 'promoted'")
            )
            return
        assert checkpoint is not None
        registry.register(
            s,
            version=version,
            checkpoint_uri=str(checkpoint),
            sha256=sha256_file(checkpoint),
            architecture="resnet50",
        )
        registry.promote(s, version)


def worker_env(rig: Rig, batch_size: int) -> dict[str, str]:
    return {
        "CRACKQ_ALLOWED_ROOTS": str(rig.root),
        "CRACKQ_BROKER_URL": rig.broker_url,
        "CRACKQ_BATCH_SIZE": str(batch_size),
        "CRACKQ_MODEL_POLL_S": str(POLL_S),
        "CRACKQ_VISIBILITY_TIMEOUT_S": "30",
        "CRACKQ_INT8": "auto",
    }


def terminate(w: Proc, timeout_s: float) -> tuple[int | None, float, bool]:
    """SIGTERM the worker's pid (as systemd or docker would); (exit code, seconds, hung)."""
    assert w.proc is not None
    t0 = time.monotonic()
    os.kill(w.proc.pid, signal.SIGTERM)
    try:
        rc: int | None = w.proc.wait(timeout_s)
        return rc, time.monotonic() - t0, False
    except subprocess.TimeoutExpired:
        w.kill()
        return w.proc.returncode, time.monotonic() - t0, True
