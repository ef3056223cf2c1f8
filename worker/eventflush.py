"""Task events published a batch at a time: the consumer flushes them on a short timer.

Celery buffers task events on the worker's event loop and flushes the buffer on the
loop's next turn. The loop takes one message off Redis per turn, so a `task-received`
goes out nearly alone, and the batch threads' `task-started` and `task-succeeded` in small
groups: one Redis PUBLISH (a kombu message, its JSON, a round trip) per two or three
events, three events a photo (61 publishes for 148 events of 48 photos). With `CRACKQ_EVENT_FLUSH_MS` > 0 the buffer is
flushed at most that often instead (and still whenever it reaches Celery's 24-event
limit), so a batch's events go out as a few `task.multi` messages. Flower still receives
every event of every photo, up to that many milliseconds later; events still buffered
when the worker stops are lost, as with Celery's own flush (whose window is one loop
turn). Acks do not go through here: the late ack after commit is untouched.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from worker.settings import get_settings


class TimedEventFlush:
    """A Celery `Consumer` mixin: buffered task events flushed by one pending timer."""

    hub: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._event_flush_s = get_settings().event_flush_ms / 1000.0
        self._event_flush_lock = threading.Lock()
        self._event_flush_armed_at: float | None = None

    def on_send_event_buffered(self) -> None:
        # Called by whichever thread sent the event: the loop thread or a batch thread.
        if not self._event_flush_s or self.hub is None:
            super().on_send_event_buffered()  # type: ignore[misc]
            return
        now = time.monotonic()
        with self._event_flush_lock:
            armed = self._event_flush_armed_at
            # a timer the hub dropped (a broker reconnect resets it) must not stop flushes
            if armed is not None and now - armed < 1.0 + 10 * self._event_flush_s:
                return
            self._event_flush_armed_at = now
        # The hub's timers belong to the loop thread; call_soon is the thread-safe way in.
        self.hub.call_soon(self._arm_event_flush)

    def _arm_event_flush(self) -> None:
        self.hub.call_later(self._event_flush_s, self._timed_event_flush)

    def _timed_event_flush(self) -> None:
        with self._event_flush_lock:
            self._event_flush_armed_at = None  # events sent during the flush arm a new one
        self._flush_events()  # type: ignore[attr-defined]
