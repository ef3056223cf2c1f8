"""Readiness of a worker: model loaded, broker and database answering, consumer consuming."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _timed(name: str, probe: Callable[[], str]) -> Check:
    t0 = time.perf_counter()
    try:
        detail = probe()
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {str(exc).strip()[:300]}")
    return Check(name, True, f"{detail} ({(time.perf_counter() - t0) * 1000:.0f} ms)")


def broker_check(client: Any) -> Check:
    """Redis answers PING (the client's socket timeout bounds the wait)."""
    return _timed("broker", lambda: "PONG" if client.ping() else "no PONG")


def database_check(sessions: sessionmaker[Session]) -> Check:
    """PostgreSQL answers `SELECT 1` through this process's pool."""

    def probe() -> str:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        return "SELECT 1"

    return _timed("database", probe)


def model_check(version: str | None) -> Check:
    """The served model is loaded (an inference worker is not ready before it is)."""
    if version is None:
        return Check("model", False, "not loaded yet")
    return Check("model", True, version)


def consuming_check(state: str) -> Check:
    """Celery's consumer takes messages: `ready`, not `starting`, `reconnecting` or `stopping`."""
    return Check("consuming", state == "ready", state)


def report(checks: list[Check]) -> tuple[bool, dict[str, Any]]:
    """(ready, JSON body) of a readiness probe."""
    ready = all(c.ok for c in checks)
    body = {"ready": ready, "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}}
    return ready, body
