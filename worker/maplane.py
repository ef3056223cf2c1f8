"""The thread that maps big photos one at a time, beside the batches of whole photos.

A batch hands its photos to map to the lane and returns at once, so its slot is free for
the next batch of whole photos: a backfill of big photos never holds every batch slot.
Their messages stay unacknowledged until the lane has stored their rows (the callback
acks them). One photo at a time keeps memory bounded: one full-size decode is alive.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from models.serving import Classifier
from worker.jobs import Loaded

log = logging.getLogger(__name__)

Done = Callable[[dict[str, Any] | None, BaseException | None], None]
MapOne = Callable[[Loaded, Classifier], dict[str, Any]]


class MapLane:
    """Runs `map_one` on each photo put in, in order, and tells its `done` callback."""

    def __init__(self, map_one: MapOne) -> None:
        self._map_one = map_one
        self._queue: queue.Queue[tuple[Loaded, Classifier, Done] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="crackq-map", daemon=True)
        self._thread.start()
        self.mapped = 0

    def put(self, loaded: Loaded, classifier: Classifier, done: Done) -> None:
        self._queue.put((loaded, classifier, done))

    def waiting(self) -> int:
        """Photos put in and not yet taken (the one being mapped is not counted)."""
        return self._queue.qsize()

    def close(self, timeout_s: float) -> bool:
        """Finish the photo being mapped and stop; photos still waiting are left unacked.

        Their messages come back from the broker (kombu restores a closing worker's
        unacknowledged messages; a killed one's after the visibility timeout).
        """
        self._stop.set()
        self._queue.put(None)  # wakes the thread if it waits for work
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if self._stop.is_set():
                left = self._queue.qsize() + (job is not None)
                if left:
                    log.info("map lane stopped; %d photos left unacknowledged for redelivery", left)
                return
            if job is None:
                continue
            loaded, classifier, done = job
            try:
                row = self._map_one(loaded, classifier)
            except BaseException as exc:  # the callback decides: retry later or dead letter
                _tell(done, None, exc)
                continue
            self.mapped += 1
            _tell(done, row, None)


def _tell(done: Done, row: dict[str, Any] | None, exc: BaseException | None) -> None:
    try:
        done(row, exc)
    except Exception:  # a failing ack must not stop the lane
        log.exception("map lane callback failed")
