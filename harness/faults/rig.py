"""What the fault scenarios share: the rig, a producer, a fresh broker, the outcome row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from pydantic import SecretStr
from sqlalchemy import Engine

from harness.rows import counts

QUEUE = "inference"
UNACKED = "unacked"  # kombu's hash of delivered, unacknowledged messages (by delivery tag)


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


def in_broker(url: str) -> int:
    """Messages queued plus messages delivered and not yet acknowledged."""
    import redis

    with redis.Redis.from_url(url, socket_timeout=5) as client:
        return int(client.llen(QUEUE)) + int(client.hlen(UNACKED))


def new_ids(fault: str, n: int) -> tuple[str, list[str]]:
    batch = f"{fault}-{uuid.uuid4().hex[:8]}"
    return batch, [f"{batch}-{i}" for i in range(n)]


def submit(app: Celery, engine: Engine, refs: list[str], ids: list[str], batch: str) -> Any:
    from db.session import make_sessionmaker
    from worker.enqueue import submit as crackq_submit

    return crackq_submit(app, make_sessionmaker(engine), refs, request_ids=ids, batch_id=batch)


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


def count_refused(result: dict[str, Any], refused: int, stored: int, distinct: int) -> None:
    """Count `refused` messages (no result row) into `result`: their dead letters as stored.

    `stored` dead letters were recorded for them, `distinct` of them for different messages.
    """
    result["submitted"] += refused
    result["stored"] += stored
    result["lost"] += max(0, refused - distinct)
    result["duplicated"] += max(0, stored - distinct)
    result["survived"] = result["survived"] and result["lost"] == 0 and result["duplicated"] == 0
