"""The upkeep thread of every worker: publish what it holds, sweep what dead workers left.

Started when the worker's consumer is ready and stopped at shutdown (worker/tasks.py
connects the signals). Every CRACKQ_HOLDS_HEARTBEAT_S it publishes the delivery tags it
holds unacked (worker/selfheal.py); every CRACKQ_SWEEP_S it fails training runs whose
worker stopped beating (any number of workers may: rows are taken SKIP LOCKED) and, when
CRACKQ_SELF_HEAL is on and it holds the sweeper lock, heals inference messages.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db import runs
from worker.selfheal import Sweeper, held_tags, lead, publish_holds
from worker.settings import Settings

log = logging.getLogger(__name__)


def sweep_dead_runs(sessions: sessionmaker[Session], dead_after_s: float) -> list[str]:
    """Fail every running run whose heartbeat is older than `dead_after_s`; their ids."""
    with sessions() as session, session.begin():
        failed = runs.fail_dead_runs(session, dead_after_s)
    for run_id, why in failed:
        log.error("run %s failed: %s", run_id, why)
    return [run_id for run_id, _ in failed]


class Upkeep:
    """The thread; `consumer` is Celery's, whose task channel's QoS knows what is held."""

    def __init__(
        self, consumer: Any, app: Celery, settings: Settings, sessions: sessionmaker[Session]
    ) -> None:
        import redis

        self.consumer, self.app, self.settings, self.sessions = consumer, app, settings, sessions
        self.worker_id = f"{consumer.hostname}:{os.getpid()}"
        self.redis = redis.Redis.from_url(settings.broker(), socket_timeout=10)
        self.sweeper = Sweeper(app, sessions, settings.holds_ttl_s, settings.requeue_lost_after_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="crackq-upkeep", daemon=True)
        self._complained = 0.0

    def start(self) -> Upkeep:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        s = self.settings
        next_sweep = time.monotonic() + s.holds_heartbeat_s
        while True:
            self._guarded("publish holds", self.publish)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + s.sweep_s
                self._guarded(
                    "sweep training runs", sweep_dead_runs, self.sessions, s.run_dead_after_s
                )
                if s.self_heal:
                    self._guarded("sweep messages", self.sweep_messages)
            if self._stop.wait(s.holds_heartbeat_s):
                return

    def publish(self) -> None:
        task_consumer = getattr(self.consumer, "task_consumer", None)
        if task_consumer is None:  # reconnecting: the last holds stay alive until their TTL
            return
        tags = held_tags(task_consumer.channel.qos)
        if tags is not None:
            publish_holds(self.redis, self.worker_id, tags, self.settings.holds_ttl_s)

    def sweep_messages(self) -> None:
        if lead(self.redis, self.worker_id, 3 * self.settings.sweep_s):
            self.sweeper.sweep()

    def _guarded(self, what: str, fn: Any, *args: Any) -> None:
        """Run one chore; a broker or database away is logged at most once a minute."""
        try:
            fn(*args)
        except Exception as exc:
            if time.monotonic() - self._complained > 60:
                self._complained = time.monotonic()
                log.warning("upkeep: could not %s: %s: %s", what, type(exc).__name__, exc)


_upkeep: Upkeep | None = None


def start(consumer: Any, app: Celery, settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Start this process's upkeep thread (once)."""
    global _upkeep
    if _upkeep is None:
        _upkeep = Upkeep(consumer, app, settings, sessions).start()
        log.info(
            "upkeep: holds every %g s, sweeps every %g s (self-heal %s)",
            settings.holds_heartbeat_s,
            settings.sweep_s,
            "on" if settings.self_heal else "off",
        )


def stop() -> None:
    """Stop the upkeep thread if it runs; idempotent."""
    global _upkeep
    if _upkeep is not None:
        _upkeep.stop()
        _upkeep = None
