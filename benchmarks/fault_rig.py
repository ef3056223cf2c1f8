"""What the fault scenarios share: the rig, a producer, counting rows, the test database switch."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from pydantic import SecretStr
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError

from tests.procs import Proc

log = logging.getLogger(__name__)

QUEUE = "inference"
UNACKED = "unacked"  # kombu's hash of delivered, unacknowledged messages (by delivery tag)
RETRY_LINE = r"storing \d+ rows failed \(attempt"
REQUEUE_LINE = r"returning \d+ messages to the queue"
MAX_INFLIGHT, WRITE_ATTEMPTS, WRITE_BACKOFF_S = 2, 6, 15.5  # worker.tasks / pipeline.write_rows


@dataclass(frozen=True)
class Rig:
    """Where the scenarios run: the database and Redis db crackq's settings point at.

    `broker_url` must be a Redis db of its own: each scenario empties its queue first.
    `photos` are image files below `root` (the worker's allowed root).
    """

    tmp: Path
    engine: Engine
    broker_url: str
    photos: list[str]
    root: Path

    def refs(self, n: int) -> list[str]:
        return [self.photos[i % len(self.photos)] for i in range(n)]


# --- shared plumbing ----------------------------------------------------------------------


def producer_app(broker_url: str, visibility_timeout_s: int) -> Celery:
    """crackq's own Celery app (worker.app.create_app), aimed at `broker_url`."""
    from worker.app import create_app
    from worker.settings import get_settings

    settings = get_settings().model_copy(
        update={"broker_url": SecretStr(broker_url), "visibility_timeout_s": visibility_timeout_s}
    )
    return create_app(settings)


def worker_env(rig: Rig, visibility_timeout_s: int, **extra: str) -> dict[str, str]:
    # Batches of 8 make a run many batches long, so a fault lands while some are in flight.
    return {
        "CRACKQ_ALLOWED_ROOTS": str(rig.root),
        "CRACKQ_BATCH_SIZE": "8",
        "CRACKQ_VISIBILITY_TIMEOUT_S": str(visibility_timeout_s),
        **extra,
    }


def fresh_broker(url: str) -> Any:
    """A client on the scenario's Redis db, its queue and unacked messages emptied."""
    import redis

    client = redis.Redis.from_url(url)
    client.delete(QUEUE, UNACKED, f"{UNACKED}_index")
    return client


def new_ids(fault: str, n: int) -> tuple[str, list[str]]:
    batch = f"{fault}-{uuid.uuid4().hex[:8]}"
    return batch, [f"{batch}-{i}" for i in range(n)]


def counts(engine: Engine, ids: list[str]) -> tuple[int, int, int, int]:
    """(final rows, distinct ids with a final row, all rows, distinct ids) among `ids`."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE status <> 'queued'), "
                "count(DISTINCT request_id) FILTER (WHERE status <> 'queued'), "
                "count(*), count(DISTINCT request_id) FROM results WHERE request_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def final_rows(engine: Engine, ids: list[str]) -> int:
    return counts(engine, ids)[1]


def outcome(fault: str, engine: Engine, ids: list[str], ok: bool, **detail: Any) -> dict[str, Any]:
    """The scenario's row: lost and duplicated come from the results table, never from logs."""
    stored, distinct_final, rows, distinct = counts(engine, ids)
    lost, duplicated = len(ids) - distinct_final, rows - distinct
    return {
        "fault": fault,
        "submitted": len(ids),
        "stored": stored,
        "lost": lost,
        "duplicated": duplicated,
        "survived": ok and lost == 0 and duplicated == 0,
        "detail": "; ".join(f"{k} {v}" for k, v in detail.items()),
        **{k: v for k, v in detail.items() if isinstance(v, bool | int | float)},
    }


def alive(w: Proc) -> bool:
    return w.proc is not None and w.proc.poll() is None


def submit(app: Celery, engine: Engine, refs: list[str], ids: list[str], batch: str) -> Any:
    from db.session import make_sessionmaker
    from worker.enqueue import submit as crackq_submit

    return crackq_submit(app, make_sessionmaker(engine), refs, request_ids=ids, batch_id=batch)


# --- a. SIGKILL mid-batch -----------------------------------------------------------------


def in_broker(url: str) -> int:
    """Messages queued plus messages delivered and not yet acknowledged."""
    import redis

    with redis.Redis.from_url(url, socket_timeout=5) as client:
        return int(client.llen(QUEUE)) + int(client.hlen(UNACKED))


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


def snapshot(engine: Engine, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT request_id, status, crack_probability, finished_at, updated_at "
                "FROM results WHERE request_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).all()
    return {r[0]: tuple(r[1:]) for r in found}
