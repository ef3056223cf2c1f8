"""Refused messages go to the dead_letters table with their reason, never silently away.

A dead letter is cleaned before it is stored (NUL and lone surrogates escaped, non-finite
numbers and deep nesting turned into text, ids cut to the column), so a hostile message
can always be recorded: only an unreachable database keeps a message in the queue.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
from typing import Any

from celery.worker.consumer import Consumer

from db import deadletters
from worker import outage
from worker.eventflush import TimedEventFlush
from worker.runtime import get_sessions

log = logging.getLogger(__name__)
MAX_RAW = 64 * 1024
MAX_PAYLOAD_JSON = 256 * 1024
MAX_DEPTH = 32
MAX_ID = 255  # dead_letters.task_id / task_name
MAX_REASON = 4000


def clean_text(value: str) -> str:
    """`value` as text PostgreSQL can store: NUL and unencodable characters escaped."""
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a JSON "\ud800"
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def clean(value: Any, depth: int = 0) -> Any:
    """A JSON value JSONB accepts, whatever a decoded message held."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # JSONB has no NaN/Infinity
    if isinstance(value, str):
        return clean_text(value)
    if depth >= MAX_DEPTH:
        return f"<{type(value).__name__} nested deeper than {MAX_DEPTH} levels>"
    if isinstance(value, dict):
        return {clean_text(str(k)): clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v, depth + 1) for v in value]
    return clean_text(repr(value)[:1000])


def clean_payload(payload: Any) -> dict[str, Any]:
    cleaned = clean(payload)
    if not isinstance(cleaned, dict):
        cleaned = {"value": cleaned}
    text = json.dumps(cleaned)
    if len(text) > MAX_PAYLOAD_JSON:
        return {"truncated": True, "json_prefix": text[:MAX_RAW]}
    return cleaned


def _short(value: Any) -> str | None:
    return None if value is None else clean_text(str(value))[:MAX_ID]


def record(task_id: Any, task_name: Any, reason: str, payload: Any) -> bool:
    """Store one dead letter; False only while the database is unreachable.

    A letter the database refuses for any other reason is stored again with its payload
    as text; if even that is refused the message is logged and dropped (True), because
    keeping it would loop forever.
    """
    letter: dict[str, Any] = {
        "task_id": _short(task_id),
        "task_name": _short(task_name),
        "reason": clean_text(reason)[:MAX_REASON],
        "payload": clean_payload(payload),
    }
    for attempt in ("as received", "as text"):
        try:
            with get_sessions()() as session, session.begin():
                deadletters.add(session, **letter)
            return True
        except Exception as exc:
            if outage.is_outage(exc):
                log.error("database unavailable: dead letter for %s not stored: %s", task_id, exc)
                return False
            log.exception("dead letter for %s could not be stored %s", letter["task_id"], attempt)
        letter["payload"] = {"unstorable": clean_text(repr(payload)[:MAX_RAW])}
    log.error("dropping message %s (%s): %s", letter["task_id"], letter["task_name"], reason)
    return True


def raw_payload(message: Any) -> dict[str, Any]:
    """The message as bytes (base64) and headers; the body is never deserialised here."""
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    raw_headers = message.headers if isinstance(message.headers, dict) else {}
    headers = {str(k): str(v)[:500] for k, v in raw_headers.items()}
    return {
        "content_type": str(message.content_type),
        "content_encoding": str(message.content_encoding),
        "headers": headers,
        "body_base64": base64.b64encode(body[:MAX_RAW]).decode(),
        "body_truncated": len(body) > MAX_RAW,
    }


class DeadLetterConsumer(TimedEventFlush, Consumer):
    """Celery's consumer, but bad messages are kept and a broker restart is survived.

    Its task events are flushed on a short timer (worker.eventflush).
    """

    def _recorded(self, message: Any, reason: str) -> bool:
        """Dead-letter `message`; when the database is away, requeue it and return False."""
        headers = message.headers if isinstance(message.headers, dict) else {}
        if record(headers.get("id"), headers.get("task"), reason, raw_payload(message)):
            return True
        time.sleep(outage.FIRST_PAUSE_S)  # no hot loop while the database is away
        message.reject_log_error(log, self.connection_errors, requeue=True)
        return False

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        if self._recorded(message, f"refused content type {message.content_type!r}: {exc}"):
            super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        if self._recorded(message, "unknown message format (no task name in its headers)"):
            super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        if self._recorded(message, f"unknown task: {exc}"):
            super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        if self._recorded(message, f"invalid task message: {exc}"):
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
