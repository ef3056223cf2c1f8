"""crackq on one machine: Redis and PostgreSQL (embedded where needed) and two workers."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from celery import Celery
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_sessionmaker
from worker import migrate
from worker.app import create_app
from worker.launch import worker_launch
from worker.services import open_services, redact
from worker.settings import Settings

Say = Callable[[str], None]
HOST_PREFIX = "demo-"  # the worker names Flower and `crackq status` show


class LocalServices(NamedTuple):
    settings: Settings  # the caller's settings, pointing at the services below
    broker: str
    database: str


class LocalWorkers(NamedTuple):
    app: Celery
    sessions: sessionmaker[Session]


@contextmanager
def local_services(settings: Settings, say: Say) -> Iterator[LocalServices]:
    """A broker and a migrated database: the configured ones, or embedded ones we stop after."""
    with open_services(settings) as (broker, database):
        say(f"broker {redact(broker)}, database {redact(database)}")
        if migrate.create_database_if_missing(database):
            say("created the database")
        migrate.upgrade(database)
        local = settings.model_copy(
            update={"broker_url": SecretStr(broker), "database_url": SecretStr(database)}
        )
        yield LocalServices(local, broker, database)


@contextmanager
def local_workers(
    services: LocalServices, allowed_roots: Sequence[Path], work: Path, say: Say
) -> Iterator[LocalWorkers]:
    """A training and an inference worker on `services`, logging into `work`; stopped on exit."""
    settings = services.settings
    env = {
        "CRACKQ_BROKER_URL": services.broker,
        "CRACKQ_DATABASE_URL": services.database,
        "CRACKQ_EMBEDDED": "never",
        "CRACKQ_MODEL_POLL_S": "1",  # so a promotion reaches the inference worker at once
        "CRACKQ_DATA_DIR": str(settings.data_dir.resolve()),
        "CRACKQ_ALLOWED_ROOTS": ",".join(str(root) for root in allowed_roots),
    }
    app = create_app(settings)
    sessions = make_sessionmaker(make_engine(services.database, pool_size=2))
    procs = [_start_worker(settings, q, env, work, say) for q in ("training", "inference")]
    try:
        yield LocalWorkers(app, sessions)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
        app.close()


def wait_serving(app: Celery, version: str | None, say: Say, timeout: float = 180) -> None:
    """Until every local inference worker reports `version` (hot reload, no restart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.inspect(timeout=1.0)._request("crackq_model") or {}
        versions = {
            name: r.get("version")
            for name, r in replies.items()
            if name.startswith(f"{HOST_PREFIX}inference")
        }
        if versions and all(v == version for v in versions.values()):
            say(f"inference worker switched to {version} without a restart")
            return
        time.sleep(1)
    raise RuntimeError(f"the inference worker did not switch to {version} within {timeout:.0f} s")


def _start_worker(
    settings: Settings, queue: str, env: dict[str, str], work: Path, say: Say
) -> subprocess.Popen[bytes]:
    launch = worker_launch(settings, queue, hostname=f"{HOST_PREFIX}{queue}@%h", loglevel="WARNING")
    path = work / f"{queue}-worker.log"
    say(f"starting a {queue} worker (log: {path})")
    with open(path, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            launch.argv, env={**os.environ, **env, **launch.env}, stdout=log, stderr=log
        )
