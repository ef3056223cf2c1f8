"""The lane (worker.lane) that maps big photos one at a time, beside the batches of whole photos.

A batch hands its photos to map to the lane and returns at once, so its slot is free for
the next batch of whole photos: a backfill of big photos never holds every batch slot.
Their messages stay unacknowledged until the lane has stored their rows (the callback
acks them). One photo at a time keeps memory bounded: one full-size decode is alive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from models.serving import Classifier
from worker.jobs import Loaded
from worker.lane import Lane

log = logging.getLogger(__name__)

Done = Callable[[dict[str, Any] | None, BaseException | None], None]
MapOne = Callable[[Loaded, Classifier], dict[str, Any]]


class MapLane(Lane[tuple[Loaded, Classifier, Done]]):
    """Runs `map_one` on each photo put in, in order, and tells its `done` callback."""

    def __init__(self, map_one: MapOne) -> None:
        self._map_one = map_one
        self.mapped = 0
        super().__init__(
            "crackq-map", log, "map lane stopped; %d photos left unacknowledged for redelivery"
        )

    def put(self, loaded: Loaded, classifier: Classifier, done: Done) -> None:
        self._put((loaded, classifier, done))

    def _run(self, job: tuple[Loaded, Classifier, Done]) -> None:
        loaded, classifier, done = job
        try:
            row = self._map_one(loaded, classifier)
        except BaseException as exc:  # the callback decides: retry later or dead letter
            _tell(done, None, exc)
            return
        self.mapped += 1
        _tell(done, row, None)


def _tell(done: Done, row: dict[str, Any] | None, exc: BaseException | None) -> None:
    try:
        done(row, exc)
    except Exception:  # a failing ack must not stop the lane
        log.exception("map lane callback failed")
