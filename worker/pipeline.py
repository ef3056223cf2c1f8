"""The inspection flow, top-down: refs -> read/decode -> one batch predict -> one write.

Photos much larger than the model's patch are not predicted here: `load` keeps their
bytes and `classify` hands them back to be mapped tile by tile (worker.mapping).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from db import results
from models.formats import CAMERA_FORMATS
from models.serving import Classifier
from models.transforms import EvalPreset
from worker import metrics
from worker.decode import finish_decode, open_image
from worker.errors import ErrorCode, ImageError
from worker.forward import PATCH, Forward, run
from worker.jobs import Classified, Item, Loaded, MapPolicy, PipelineConfig, ReviewPolicy
from worker.review import enter_review
from worker.rows import base_row, failed_row, ms_since, now, verdict
from worker.shadow import Shadow
from worker.shadowscore import score_patches
from worker.sources import SourceLimits, read_bytes

# the job's types, for callers that import them from here
__all__ = [
    "Classified",
    "Item",
    "Loaded",
    "MapPolicy",
    "PipelineConfig",
    "classify",
    "load",
    "verdict",
]

log = logging.getLogger(__name__)


@functools.cache
def preset(size: int) -> EvalPreset:
    """The eval transform for `size`, built once per size."""
    return EvalPreset(size)


@dataclass
class Timings:
    """Milliseconds per phase of one job, for its one log line."""

    ms: dict[str, float] = field(default_factory=dict)
    predicted: int = 0  # photos in the forward pass

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = ms_since(t0)


def classify(
    items: Sequence[Item],
    classifier: Classifier,
    sessions: sessionmaker[Session],
    config: PipelineConfig,
    *,
    pool: Executor | None = None,
    forward: Forward | None = None,
    shadow: Shadow | None = None,
) -> Classified:
    """Classify one batch of `items` and store a row each, except photos to be mapped.

    Items whose request id already has a final row are skipped. Reads and decodes run in
    `pool` (in this thread without one); `forward` runs the forward pass (worker.forward:
    one thread for every batch and map of the process; in this thread without one).
    Photos that are to be mapped come back in `to_map`, read but not decoded. Once the
    rows are stored, `shadow` (worker.shadow) scores its sample of them
    (worker.shadowscore, which never raises). Database errors propagate: the task that
    called this decides whether they are worth a retry (worker.outage).
    """
    started, timings = now(), Timings()
    with timings.phase("lookup"):
        todo = unfinished(items, sessions)
    if not todo:
        return Classified([], [], classifier)
    with timings.phase("decode"):
        loaded = load_all(todo, classifier, config, pool)
    to_map = [x for x in loaded if x.data is not None]
    whole = [x for x in loaded if x.data is None]
    rows = predict_rows(whole, classifier, config.hostname, started, forward, timings)
    with timings.phase("write"):
        write_rows(rows, sessions, config.review)
    if shadow is not None:
        with timings.phase("shadow"):
            score_patches(shadow, whole, classifier, sessions, forward)
    log_job(rows, classifier, timings, len(to_map))
    metrics.observe_batch(rows, timings.ms, timings.predicted)
    return Classified(rows, to_map, classifier)


def unfinished(items: Sequence[Item], sessions: sessionmaker[Session]) -> list[Item]:
    """Items whose request id has no final row yet, first occurrence of each id only."""
    with sessions() as session:
        done = results.finished_ids(session, (i.request_id for i in items))
    seen: set[str] = set()
    todo = []
    for item in items:
        if item.request_id not in done and item.request_id not in seen:
            seen.add(item.request_id)
            todo.append(item)
    return todo


def load_all(
    items: Sequence[Item], classifier: Classifier, config: PipelineConfig, pool: Executor | None
) -> list[Loaded]:
    """Every item read and decoded for `classifier`, in `pool` when given, in order."""
    tile = config.maps.tile_for(classifier)
    size = classifier.input_size
    args = (config.limits, config.max_pixels, size, config.formats, config.maps, tile)
    if pool is None:
        return [load(item, *args) for item in items]
    return [f.result() for f in [pool.submit(load, item, *args) for item in items]]


def load(
    item: Item,
    limits: SourceLimits,
    max_pixels: int,
    size: int,
    formats: Collection[str] = CAMERA_FORMATS,
    maps: MapPolicy | None = None,
    tile: int = 0,
) -> Loaded:
    """Read and decode one reference into model-sized pixels; errors become a value.

    A photo `maps` says to map is only read and its header checked: it keeps its bytes.
    """
    t0 = time.perf_counter()
    try:
        data = read_bytes(item.image_ref, limits)
        opened = open_image(data, max_pixels, formats=formats)
        if maps is not None and maps.wants_map(item.mode, opened.size, tile or size):
            return Loaded(item, None, None, ms_since(t0), data=data)
        image = finish_decode(opened, max_pixels, target=size)
        pixels = preset(size)(image)
        return Loaded(item, pixels, None, ms_since(t0))
    except ImageError as exc:
        return Loaded(item, None, exc, ms_since(t0))
    except Exception as exc:  # a bug must cost one row, not the batch
        log.exception("unexpected error reading %s", item.image_ref)
        return Loaded(item, None, ImageError(ErrorCode.INTERNAL_ERROR, repr(exc)), ms_since(t0))


def predict_rows(
    loaded: Sequence[Loaded],
    classifier: Classifier,
    hostname: str,
    started: dt.datetime,
    forward: Forward | None,
    timings: Timings,
    kind: str = PATCH,
) -> list[dict[str, Any]]:
    """One forward pass over the decodable items; a row for every item.

    `kind` is the forward thread's lane: PATCH for live photos, RESCORE (after them and
    map tiles, capped while they arrive) for re-scores (worker.rescoring)."""
    good = [x for x in loaded if x.pixels is not None]
    p_crack: list[float] = []
    if good:
        batch = np.stack([x.pixels for x in good])  # type: ignore[misc]
        with timings.phase("predict"):
            p_crack = run(forward, classifier, batch, kind).tolist()
        timings.predicted = len(good)
    finished = now()
    probs = iter(p_crack)
    rows = []
    for x in loaded:
        row = {**base_row(x.item), "started_at": started, "finished_at": finished}
        row.update(decode_ms=x.decode_ms, worker_host=hostname)
        if x.error is None:
            row.update(verdict(next(probs), classifier.threshold))
            row.update(model_version=classifier.version, inference_ms=timings.ms["predict"])
            row.update(batch_size=len(good), mode="patch")
        else:
            row.update(failed_row(x.item, x.error, x.decode_ms))
        rows.append(row)
    return rows


def write_rows(
    rows: list[dict[str, Any]], sessions: sessionmaker[Session], review: ReviewPolicy | None = None
) -> None:
    """One upsert for the whole batch, committed before any message is acknowledged.

    The review queue's rules pick from the rows this write made final, in the same
    transaction (worker.review: a savepoint, so they never fail the rows).
    """
    with sessions() as session, session.begin():
        written = results.upsert_outcomes(session, rows)
        enter_review(session, written, review)


def log_job(
    rows: Sequence[dict[str, Any]], classifier: Classifier, t: Timings, to_map: int = 0
) -> None:
    """One line per job: what happened to it and where its time went."""
    failed = sum(r["status"] == "failed" for r in rows)
    phases = ", ".join(f"{name} {ms:.0f} ms" for name, ms in t.ms.items())
    log.info(
        "batch of %d predicted with %s; %d rows (%d failed), %d photos to map; %s",
        t.predicted,
        classifier.version,
        len(rows),
        failed,
        to_map,
        phases,
    )
