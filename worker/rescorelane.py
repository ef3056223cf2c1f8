"""The thread that runs re-score batches one at a time, so they never hold a batch slot.

A batch's re-scores (worker.classify_task.by_version) are handed here and the batch
returns at once: both batch slots stay free for live photos, as they do for big photos
(worker.maplane). Their messages stay unacknowledged until their rows are stored (the
job acks them); jobs still waiting at shutdown are left unacked for redelivery.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class RescoreLane:
    """Runs each job put in, in order, on one thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="crackq-rescore", daemon=True)
        self._thread.start()

    def put(self, job: Callable[[], None]) -> None:
        self._queue.put(job)

    def waiting(self) -> int:
        return self._queue.qsize()

    def close(self, timeout_s: float) -> bool:
        """Finish the job running and stop; jobs still waiting stay unacked."""
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if self._stop.is_set():
                left = self._queue.qsize() + (job is not None)
                if left:
                    log.info("re-score lane stopped; %d batches left unacknowledged", left)
                return
            if job is None:
                continue
            try:
                job()
            except Exception:  # the job handles its own failures; this keeps the lane alive
                log.exception("re-score batch failed")
