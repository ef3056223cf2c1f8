"""A lane: one thread that runs the jobs put in, in order, beside the batches (map, re-score).

A batch hands work to a lane and returns at once, so its slot is free for the next batch
of live photos. The work's messages stay unacknowledged until the job has stored its rows
(the job or its callback acks them). Closing a lane finishes the job running and leaves
the ones still waiting unacked: the broker delivers them again (kombu restores a closing
worker's unacknowledged messages; a killed one's after the visibility timeout).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Generic, TypeVar

Job = TypeVar("Job")


class Lane(Generic[Job]):
    """Runs `_run` on each job put in, in order, on one daemon thread named `name`.

    `stopped` is the line logged (to `log`, with the count) when a close leaves jobs
    waiting. A subclass sets up what `_run` needs before calling this `__init__`: the
    thread starts in it.
    """

    def __init__(self, name: str, log: logging.Logger, stopped: str) -> None:
        self._log = log
        self._stopped = stopped
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _put(self, job: Job) -> None:
        self._queue.put(job)

    def waiting(self) -> int:
        """Jobs put in and not yet taken (the one running is not counted)."""
        return self._queue.qsize()

    def close(self, timeout_s: float) -> bool:
        """Finish the job running and stop; jobs still waiting are left unacked.

        False if the running job outlasted `timeout_s`.
        """
        self._stop.set()
        self._queue.put(None)  # wakes the thread if it waits for work
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self, job: Job) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if self._stop.is_set():
                left = self._queue.qsize() + (job is not None)
                if left:
                    self._log.info(self._stopped, left)
                return
            if job is None:
                continue
            self._run(job)
