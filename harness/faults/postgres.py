"""A PostgreSQL outage: the test database refuses connections for a while, then comes back."""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import OperationalError

from harness.faults.rig import Rig, fresh_broker, new_ids, outcome, producer_app, submit, worker_env
from harness.procs import READY, Proc, wait_until, worker
from harness.rows import final_rows

RETRY_LINE = r"storing \d+ rows failed \(attempt"
REQUEUE_LINE = r"returning \d+ messages to the queue"
MAX_INFLIGHT, WRITE_ATTEMPTS, WRITE_BACKOFF_S = 2, 6, 15.5  # worker.tasks / pipeline.write_rows


def set_connections(admin: Engine, database: str, allow: bool) -> None:
    """ALLOW_CONNECTIONS on this one database; refusing also ends its open sessions."""
    if not re.fullmatch(r"crackq_(test|bench)_\w+", database):
        raise ValueError(f"refusing to take {database!r} offline: not a test/bench database")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allow).lower()}'))
        if not allow:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"
                ),
                {"d": database},
            )


def can_connect(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(select(1))
        return True
    except OperationalError:
        return False


def outage(engine: Engine, w: Proc, seconds: float) -> bool:
    """Refuse `engine`'s database for `seconds` (or until `w` dies); whether it was down."""
    database = str(engine.url.database)
    admin = create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        set_connections(admin, database, allow=False)
        refused = time.monotonic()
        really_down = not can_connect(engine)
        while time.monotonic() - refused < seconds and w.alive():
            time.sleep(0.5)
    finally:
        set_connections(admin, database, allow=True)
        admin.dispose()
    return really_down


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
    try:
        with worker(rig.tmp, batch, env=worker_env(rig, visibility_timeout_s)) as w:
            w.wait_for_log(READY, 300)
            assert w.proc is not None
            pid = w.proc.pid
            submit(app, rig.engine, rig.refs(n), ids, batch)
            really_down = outage(rig.engine, w, outage_s)  # the first batch is in the model
            allowed = time.monotonic()
            at_allow = final_rows(rig.engine, ids)
            done = wait_until(lambda: final_rows(rig.engine, ids) == n, timeout_s)
            recovered_s = time.monotonic() - allowed
            same = w.alive() and w.proc.pid == pid
            text_log = w.log()
    finally:
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
