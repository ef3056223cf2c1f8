"""The lane (worker.lane) that runs re-score batches one at a time, never in a batch slot.

A batch's re-scores (worker.classify_task.by_version) are handed here and the batch
returns at once: both batch slots stay free for live photos, as they do for big photos
(worker.maplane). Their messages stay unacknowledged until their rows are stored (the
job acks them); jobs still waiting at shutdown are left unacked for redelivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from worker.lane import Lane

log = logging.getLogger(__name__)


class RescoreLane(Lane[Callable[[], None]]):
    """Runs each job put in, in order, on one thread."""

    def __init__(self) -> None:
        super().__init__(
            "crackq-rescore", log, "re-score lane stopped; %d batches left unacknowledged"
        )

    def put(self, job: Callable[[], None]) -> None:
        self._put(job)

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:  # the job handles its own failures; this keeps the lane alive
            log.exception("re-score batch failed")
