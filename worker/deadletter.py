"""Refused messages go to the dead_letters table with their reason, never silently away."""

from __future__ import annotations

import base64
import logging
from typing import Any

from celery.worker.consumer import Consumer

from db import deadletters
from worker.runtime import get_sessions

log = logging.getLogger(__name__)
MAX_RAW = 64 * 1024


def record(
    task_id: str | None, task_name: str | None, reason: str, payload: dict[str, Any]
) -> bool:
    """Store one dead letter; False (and a log line) when the database is unreachable."""
    try:
        with get_sessions()() as session, session.begin():
            deadletters.add(
                session, task_id=task_id, task_name=task_name, reason=reason, payload=payload
            )
        return True
    except Exception:
        log.exception("could not store dead letter for %s (%s): %s", task_id, task_name, reason)
        return False


def raw_payload(message: Any) -> dict[str, Any]:
    """The message as bytes (base64) and headers; the body is never deserialised here."""
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    headers = {k: str(v)[:500] for k, v in (message.headers or {}).items()}
    return {
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "headers": headers,
        "body_base64": base64.b64encode(body[:MAX_RAW]).decode(),
        "body_truncated": len(body) > MAX_RAW,
    }


class DeadLetterConsumer(Consumer):
    """Celery's consumer, but bad messages are kept and a broker restart is survived."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        headers = message.headers or {}
        record(
            headers.get("id"),
            headers.get("task"),
            f"refused content type {message.content_type!r}: {exc}",
            raw_payload(message),
        )
        super().on_decode_error(message, exc)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        headers = message.headers or {}
        record(headers.get("id"), headers.get("task"), f"unknown task: {exc}", raw_payload(message))
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        headers = message.headers or {}
        record(
            headers.get("id"),
            headers.get("task"),
            f"invalid task message: {exc}",
            raw_payload(message),
        )
        super().on_invalid_task(body, message, exc)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        # Celery/kombu 5.7: collect() detaches the Redis transport, then close() tries to push
        # the unacked messages back through it and raises AttributeError, which Celery calls
        # unrecoverable: a Redis restart stopped the worker (benchmarks/faults.py). Those
        # messages are still in Redis's unacked hash, restored after the visibility timeout,
        # so reconnect instead.
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError:
            log.warning("broker connection lost; unacked messages left to the visibility timeout")
