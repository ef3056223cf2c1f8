"""The one retry policy: which errors mean PostgreSQL is away, and how a message waits it out.

Only an outage is retried; anything else becomes a failed row or a dead letter. A message
Celery runs itself is retried by Celery after `pause_s` (`retried`); a batched message is
put back on the queue after the same pause (`requeue_later`), its slot held meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from db.session import is_unavailable

log = logging.getLogger(__name__)

FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 10.0  # a message waits at most this long once the database is back


def is_outage(exc: BaseException) -> bool:
    """True for the only errors worth retrying: the database cannot be reached now.

    Anything else (a bad row, a bug) would fail the same way again: it becomes a failed
    row or a dead letter instead.
    """
    return is_unavailable(exc)


def pause_s(attempt: int) -> float:
    """The wait before try `attempt + 1`: 1 s after the first failure, doubling, at most 10 s."""
    return min(FIRST_PAUSE_S * 2 ** max(attempt - 1, 0), LONGEST_PAUSE_S)


class Streak:
    """Consecutive outages seen by this process, for messages that carry no retry count.

    A message put back on the queue by hand comes back unchanged; the backoff lives here
    instead, shared by every batch in flight and reset by the first batch that is stored.
    """

    def __init__(self) -> None:
        self._failures = 0
        self._lock = threading.Lock()

    def failed(self) -> int:
        """Count one more failure; returns the attempt number it was."""
        with self._lock:
            self._failures += 1
            return self._failures

    def ended(self) -> None:
        with self._lock:
            self._failures = 0


@contextmanager
def retried(task: Any) -> Iterator[None]:
    """Run the body of a bound Celery task; an outage becomes a retry, anything else propagates."""
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise
        retry_later(task, exc)


def retry_later(task: Any, reason: object) -> NoReturn:
    """Retry the running Celery task after `pause_s` of its attempt; it never runs out."""
    attempt = task.request.retries + 1
    pause = _announce(
        f"{task.name} {task.request.id}", attempt, reason, "retrying", pause_s(attempt)
    )
    raise task.retry(countdown=pause, max_retries=None)


def requeue_later(requests: Sequence[Any], attempt: int, reason: object) -> None:
    """Put batched messages back on the queue unacked after `pause_s(attempt)`.

    Celery's own retry would republish with an ETA, which the batcher does not hold back.
    The sleep keeps the batch's slot, so no hot loop runs while the database is away.
    """
    n = len(requests)
    back = f"returning {n} messages to the queue"
    time.sleep(_announce(f"storing {n} rows failed", attempt, reason, back, pause_s(attempt)))
    for req in requests:
        req.reject(requeue=True)


def _announce(what: str, attempt: int, reason: object, then: str, pause: float) -> float:
    # One line per wait: the fault benchmarks count them to prove the backoff bounded.
    log.error(
        "%s (attempt %d): database unavailable: %s; %s in %.1f s",
        what,
        attempt,
        reason,
        then,
        pause,
    )
    return pause
