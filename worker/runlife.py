"""A training run's life around its steps: the atomic claim, the heartbeat, the hard deadline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from db import runs
from db.tables import TrainingRun
from models.datasets import DatasetError
from models.progress import TrainingCancelled

log = logging.getLogger(__name__)
Json = dict[str, Any]


class RunLost(RuntimeError):
    """The run's row stopped saying `running` under a live worker (swept as dead): stop."""


def claim(sessions: sessionmaker[Session], run_id: str, worker: str) -> TrainingRun | None:
    """The run's row, now `running` on `worker`; None if it was not queued (a repeat)."""
    with sessions() as session, session.begin():
        row = runs.claim_run(session, run_id, worker)
        if row is None:
            status = runs.get_run(session, run_id).status  # RunNotFound for an unknown id
            log.warning("run %s is %s, not queued: not run again", run_id, status)
            return None
        session.expunge(row)
    return row


def finish(sessions: sessionmaker[Session], run_id: str, status: str, message: str) -> None:
    """running -> `status`; a run already swept as dead keeps the sweeper's reason."""
    with sessions() as session, session.begin():
        changed = runs.finish_run(session, run_id, status, message=message)
    if changed:
        log.warning("run %s %s: %s", run_id, status, message)
    else:
        log.warning("run %s was no longer running; not marked %s: %s", run_id, status, message)


class Deadline:
    """A run's hard time limit, counted from its claim: every step, the INT8 child included."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._end = time.monotonic() + limit_s

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def check(self, during: str) -> None:
        if self.remaining() <= 0:
            self.expired(during)

    def expired(self, during: str) -> NoReturn:
        raise TrainingCancelled(f"time limit of {self.limit_s:g} s reached {during}", [])


def to_the_end(sessions: sessionmaker[Session], run_id: str, body: Callable[[], Json]) -> Json:
    """`body`'s outcome; whatever ends it early also ends the run row (cancelled or failed)."""
    try:
        return body()
    except TrainingCancelled as exc:
        message = f"cancelled: {exc.reason}; the promoted model is unchanged"
        finish(sessions, run_id, "cancelled", message)
        return {"status": "cancelled", "reason": exc.reason}
    except RunLost as exc:
        log.error("%s; it keeps the sweeper's outcome", exc)
        return {"status": "lost", "message": str(exc)}
    except (DatasetError, FileNotFoundError, PermissionError, ValueError) as exc:
        finish(sessions, run_id, "failed", f"{type(exc).__name__}: {exc}")
        return {"status": "failed", "message": str(exc)}
    except BaseException as exc:  # OOM, bugs: the run must not stay "running"
        finish(sessions, run_id, "failed", f"{type(exc).__name__}: {exc}")
        raise


class Heartbeat:
    """A thread that sets the run's `heartbeat_at` every `every_s` seconds while it runs.

    If the row stops saying `running` (a sweeper failed it while this worker stalled),
    `lost` is set and `check` raises RunLost at the run's next step or batch.
    """

    def __init__(self, sessions: sessionmaker[Session], run_id: str, every_s: float) -> None:
        self.sessions, self.run_id, self.every_s = sessions, run_id, every_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"crackq-heartbeat-{run_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(self.every_s + 10)

    def check(self) -> None:
        if self.lost.is_set():
            raise RunLost(f"run {self.run_id} is no longer running in the database")

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                with self.sessions() as session, session.begin():
                    alive = runs.beat(session, self.run_id)
            except DBAPIError as exc:  # an outage: the sweeper waits minutes, we retry
                log.warning("run %s: heartbeat not written (%s)", self.run_id, exc.orig or exc)
                continue
            if not alive:
                log.error("run %s: its row is no longer running; stopping", self.run_id)
                self.lost.set()
                return


class Guard:
    """The checks a run makes before every batch and between its steps."""

    def __init__(self, heartbeat: Heartbeat, deadline: Deadline, cancelled: Callable[[], bool]):
        self.heartbeat, self.deadline, self.cancelled = heartbeat, deadline, cancelled

    def should_stop(self) -> bool:
        """Before every batch: a lost run or a passed deadline raise; a cancel is True."""
        self.heartbeat.check()
        self.deadline.check("while training")
        return self.cancelled()

    def step(self, name: str) -> None:
        """Between steps: the same checks; a cancel stops the run there too."""
        self.heartbeat.check()
        self.deadline.check(f"before {name}")
        if self.cancelled():
            raise TrainingCancelled("cancelled", [])
