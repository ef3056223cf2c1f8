"""Prometheus metrics of a worker process (README "Metrics and health").

Two kinds, on one registry (prometheus_client's default, with its process collector):
- what this worker did, counted as it happens: rows stored, batch sizes, phase times,
  submit-to-stored latency, crack maps; summed over workers by Prometheus;
- what the system holds, read at scrape time by `SystemCollector`: queue depth per queue
  (waiting in Redis and held unacked by workers), rows per status and error code, dead
  letters, training runs and their progress. Every worker reports the same values: take
  `max` over workers, never `sum`. Database figures are read at most every `db_every_s`.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from db import deadletters, results, runs
from db.tables import RESULT_STATUSES, RUN_STATUSES
from models.serving import Classifier

log = logging.getLogger(__name__)

# kombu's Redis transport: messages wait in a list named after the queue (and one list per
# priority step, "<queue>\x06\x16<n>"), and a consumer's unacked ones in one hash.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
UNACKED = "unacked"

# Batch phases of 32 photos on a CPU take 0.5-3 s: finer there, so a p95 is not a bucket edge.
SECONDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75,
    1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 30, 60,
)  # fmt: skip
# A backlog drains over minutes: finer between 10 s and 5 min than a single photo needs.
LATENCY = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800, 3600,
)  # fmt: skip

ROWS = Counter(
    "crackq_rows_stored",
    "Final result rows this worker committed, by status and error code.",
    ["status", "error_code"],
)
BATCH_SIZE = Histogram(
    "crackq_batch_size",
    "Photos per forward pass of a batch (crack-map tiles not included).",
    buckets=(1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256, 512),
)
PHASE_SECONDS = Histogram(
    "crackq_batch_phase_seconds",
    "Time of each phase of a batch: lookup (finished rows), decode (read, decode and resize "
    "every photo, in parallel), predict (the forward pass), write (one commit).",
    ["phase"],
    buckets=SECONDS,
)
DECODE_SECONDS = Histogram(
    "crackq_decode_seconds",
    "Read + decode + resize time of one photo.",
    buckets=SECONDS,
)
LATENCY_SECONDS = Histogram(
    "crackq_latency_seconds",
    "From submission (the message's submitted_at) to the row's commit, per row.",
    ["mode"],
    buckets=LATENCY,
)
MAP_SECONDS = Histogram(
    "crackq_map_seconds",
    "Time to map one big photo (decode, tiles through the model, store).",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
MAP_TILES = Counter("crackq_map_tiles", "Tiles this worker classified in crack maps.")
DEAD_LETTERS = Counter(
    "crackq_dead_letters_stored", "Messages this worker refused and stored as dead letters."
)
SHADOW_SCORED = Counter(
    "crackq_shadow_scored",
    "Live photos this worker also scored with the shadow version (crackq models shadow).",
    ["version"],
)
SHADOW_FAILURES = Counter(
    "crackq_shadow_failures",
    "Shadow scoring that failed (load, forward, write) or was skipped (input_size: the "
    "shadow model takes another input size); live rows never wait for or fail with it.",
    ["stage"],
)
REVIEW_ENTERED = Counter(
    "crackq_review_entered",
    "Photos this worker put in the review queue, by the rule that picked them.",
    ["reason"],
)
REVIEW_FAILURES = Counter(
    "crackq_review_failures",
    "Batches whose review-queue rules failed (logged); their rows were stored regardless.",
)


def observe_batch(
    rows: Sequence[Mapping[str, Any]], phases_ms: Mapping[str, float], predicted: int
) -> None:
    """One batch's figures (worker.pipeline.classify)."""
    if predicted:
        BATCH_SIZE.observe(predicted)
    for phase, ms in phases_ms.items():
        PHASE_SECONDS.labels(phase).observe(ms / 1000.0)
    for row in rows:
        if row.get("decode_ms") is not None:
            DECODE_SECONDS.observe(row["decode_ms"] / 1000.0)


def observe_map(row: Mapping[str, Any], seconds: float) -> None:
    """One mapped photo's figures (worker.mapping.map_photo)."""
    MAP_SECONDS.observe(seconds)
    MAP_TILES.inc(row.get("tiles") or 0)


def stored(rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows just committed: counted by outcome, with their submit-to-stored latency."""
    outcomes = collections.Counter((r["status"], r.get("error_code") or "") for r in rows)
    for labels, n in outcomes.items():
        ROWS.labels(*labels).inc(n)
    for row in rows:
        submitted, finished = row.get("submitted_at"), row.get("finished_at")
        if submitted is not None and finished is not None:
            mode = row.get("mode") or "patch"
            LATENCY_SECONDS.labels(mode).observe(max(0.0, (finished - submitted).total_seconds()))


def queue_depth(client: Any, queues: Sequence[str]) -> dict[tuple[str, str], int]:
    """(queue, waiting|unacked) -> messages, read from the broker in two round trips.

    Unacked messages are told apart by the routing key kombu stores with each (crackq's
    exchange routes each queue by its own name).
    """
    pipe = client.pipeline(transaction=False)
    for q in queues:
        for name in (q, *(f"{q}{PRIORITY_SEP}{n}" for n in PRIORITY_STEPS)):
            pipe.llen(name)
    lengths = pipe.execute()
    step = 1 + len(PRIORITY_STEPS)
    depth = {(q, "waiting"): sum(lengths[i * step : (i + 1) * step]) for i, q in enumerate(queues)}
    depth.update({(q, "unacked"): 0 for q in queues})
    for _tag, value in client.hscan_iter(UNACKED, count=1000):
        try:
            routing_key = json.loads(value)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if (routing_key, "unacked") in depth:
            depth[(routing_key, "unacked")] += 1
    return depth


def run_progress(progress: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """A running run's (fraction done, training images/s) from its last progress payload."""
    steps, step = progress.get("steps"), progress.get("step")
    done = step / steps if isinstance(step, int) and isinstance(steps, int) and steps else None
    speed = progress.get("images_per_s")
    return done, (float(speed) if isinstance(speed, int | float) else None)


class SystemCollector(Collector):
    """Scrape-time gauges: queues from Redis, rows and runs from PostgreSQL, the served model.

    A source that does not answer is left out of that scrape and `crackq_source_up` says 0
    for it; the scrape itself never fails.
    """

    def __init__(
        self,
        redis_client: Any,
        sessions: sessionmaker[Session],
        queues: Sequence[str],
        serving: Callable[[], Classifier | None],
        db_every_s: float = 10.0,
    ) -> None:
        self.redis, self.sessions, self.queues = redis_client, sessions, tuple(queues)
        self.serving, self.db_every_s = serving, db_every_s
        self._db: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "crackq_source_up", "Whether the last read of a source answered.", labels=["source"]
        )
        try:
            yield self._queues()
            up.add_metric(["broker"], 1)
        except Exception as exc:
            log.debug("metrics: broker unreadable: %s", exc)
            up.add_metric(["broker"], 0)
        try:
            yield from self._database()
            up.add_metric(["database"], 1)
        except Exception as exc:
            log.debug("metrics: database unreadable: %s", exc)
            self._db = None
            up.add_metric(["database"], 0)
        yield up
        model = self.serving()
        if model is not None:
            info = InfoMetricFamily("crackq_model", "The model version this worker serves.")
            info.add_metric([], {"version": model.version, "serving": str(model.serving)})
            yield info

    def _queues(self) -> Metric:
        gauge = GaugeMetricFamily(
            "crackq_queue_messages",
            "Messages per queue: waiting in Redis, or delivered to a worker and not yet acked.",
            labels=["queue", "state"],
        )
        for (queue, state), n in sorted(queue_depth(self.redis, self.queues).items()):
            gauge.add_metric([queue, state], n)
        return gauge

    def _database(self) -> list[Metric]:
        now = time.monotonic()
        if self._db is None or now - self._db[0] >= self.db_every_s:
            self._db = (now, self._read_database())
        return self._db[1]

    def _read_database(self) -> list[Metric]:
        with self.sessions() as session:
            outcomes = results.outcome_totals(session)
            letters = deadletters.waiting_count(session)
            run_totals = runs.status_totals(session)
            active = [(r.run_id, dict(r.progress or {})) for r in runs.running(session)]
        rows = GaugeMetricFamily(
            "crackq_results",
            "Rows in the results table by status and error code (all workers' work).",
            labels=["status", "error_code"],
        )
        # Every status is reported, 0 included: a series that vanished at 0 would leave
        # Prometheus (and an alert on queued rows) at its last non-zero value.
        seen = {status for status, _ in outcomes}
        zeros = {(status, ""): 0 for status in RESULT_STATUSES if status not in seen}
        for (status, code), n in sorted({**outcomes, **zeros}.items()):
            rows.add_metric([status, code], n)
        waiting = GaugeMetricFamily(
            "crackq_dead_letters_waiting", "Dead letters not yet replayed.", value=letters
        )
        run_gauge = GaugeMetricFamily(
            "crackq_training_runs", "Training runs by status.", labels=["status"]
        )
        for status, n in sorted({**dict.fromkeys(RUN_STATUSES, 0), **run_totals}.items()):
            run_gauge.add_metric([status], n)
        done = GaugeMetricFamily(
            "crackq_training_progress_ratio",
            "Fraction of a running run's training steps done.",
            labels=["run_id"],
        )
        speed = GaugeMetricFamily(
            "crackq_training_images_per_second",
            "A running run's training images/s in its current epoch.",
            labels=["run_id"],
        )
        for run_id, progress in active:
            fraction, img_s = run_progress(progress)
            if fraction is not None:
                done.add_metric([run_id], fraction)
            if img_s is not None:
                speed.add_metric([run_id], img_s)
        return [rows, waiting, run_gauge, done, speed]
