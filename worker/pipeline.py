"""The inspection flow, top-down: refs -> read/decode -> one batch predict -> one write."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from db import results
from models.formats import CAMERA_FORMATS
from models.network import CLASSES, CRACK_INDEX
from models.serving import Classifier
from models.transforms import EvalPreset, stack
from worker.decode import decode_image
from worker.errors import ErrorCode, ImageError
from worker.sources import SourceLimits, read_bytes

log = logging.getLogger(__name__)


@functools.cache
def preset(size: int) -> EvalPreset:
    """The eval transform for `size`, built once per size."""
    return EvalPreset(size)


@dataclass(frozen=True)
class Item:
    """One image reference to classify, as carried by a message."""

    request_id: str
    image_ref: str
    batch_id: str | None = None
    submitted_at: dt.datetime | None = None


@dataclass(frozen=True)
class Loaded:
    """An item after reading and decoding: pixels or the reason it failed."""

    item: Item
    pixels: np.ndarray | None
    error: ImageError | None
    decode_ms: float


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline takes from the settings: where and how it may read, who it is."""

    limits: SourceLimits
    max_pixels: int
    formats: tuple[str, ...]
    hostname: str  # recorded on every row: which worker classified it


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
    forward_lock: AbstractContextManager[Any] | None = None,
) -> list[dict[str, Any]]:
    """Classify one batch of `items` and store a row each; returns the rows written.

    Items whose request id already has a final row are skipped. Reads and decodes run in
    `pool` (in this thread without one); `forward_lock` keeps forward passes of batches
    in flight at once from competing for the cores. Database errors propagate: the task
    that called this decides whether they are worth a retry (worker.outage).
    """
    started, timings = now(), Timings()
    with timings.phase("lookup"):
        todo = unfinished(items, sessions)
    if not todo:
        return []
    with timings.phase("decode"):
        loaded = load_all(todo, classifier.input_size, config, pool)
    rows = predict_rows(loaded, classifier, config.hostname, started, forward_lock, timings)
    with timings.phase("write"):
        write_rows(rows, sessions)
    log_job(rows, classifier, timings)
    return rows


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
    items: Sequence[Item], size: int, config: PipelineConfig, pool: Executor | None
) -> list[Loaded]:
    """Every item read and decoded to `size`, in `pool` when given, in order."""
    args = (config.limits, config.max_pixels, size, config.formats)
    if pool is None:
        return [load(item, *args) for item in items]
    return [f.result() for f in [pool.submit(load, item, *args) for item in items]]


def load(
    item: Item,
    limits: SourceLimits,
    max_pixels: int,
    size: int,
    formats: Collection[str] = CAMERA_FORMATS,
) -> Loaded:
    """Read and decode one reference into model-sized pixels; errors become a value."""
    t0 = time.perf_counter()
    try:
        data = read_bytes(item.image_ref, limits)
        image = decode_image(data, max_pixels, target=size, formats=formats)
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
    forward_lock: AbstractContextManager[Any] | None,
    timings: Timings,
) -> list[dict[str, Any]]:
    """One forward pass over the decodable items; a row for every item."""
    good = [x for x in loaded if x.pixels is not None]
    p_crack: list[float] = []
    if good:
        batch = stack([x.pixels for x in good])  # type: ignore[misc]
        # one forward at a time: torch already uses every core
        with forward_lock or nullcontext(), timings.phase("predict"):
            p_crack = classifier.predict(batch)[:, CRACK_INDEX].tolist()
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
            row.update(batch_size=len(good))
        else:
            row.update(
                status="failed", error_code=x.error.code.value, error_message=x.error.message[:2000]
            )
        rows.append(row)
    return rows


def verdict(p: float, threshold: float) -> dict[str, Any]:
    """Label, confidence and stored crack probability of one photo at the model's threshold.

    The label is the one comparison with the threshold the checkpoint chose on its
    validation set. The stored probability is rescaled so that the threshold sits at 0.5
    (its odds divided by the threshold's odds), so a row reads the same whatever the
    model: crack exactly when crack_probability >= 0.5, and confidence, the probability
    of the predicted label, in [0.5, 1].
    """
    t = min(max(threshold, 1e-4), 1.0 - 1e-4)  # 0 or 1 would make every photo one class
    crack = p >= t
    odds_p, odds_t = p * (1.0 - t), (1.0 - p) * t
    q = odds_p / (odds_p + odds_t) if odds_p + odds_t > 0 else float(crack)
    q = max(q, 0.5) if crack else min(q, 0.5 - 1e-12)  # rounding never contradicts the label
    return {
        "status": "succeeded",
        "label": CLASSES[CRACK_INDEX] if crack else CLASSES[1 - CRACK_INDEX],
        "confidence": q if crack else 1.0 - q,
        "crack_probability": q,
    }


def base_row(item: Item) -> dict[str, Any]:
    return {
        "request_id": item.request_id,
        "image_ref": item.image_ref,
        "batch_id": item.batch_id,
        "submitted_at": item.submitted_at,
    }


def write_rows(rows: list[dict[str, Any]], sessions: sessionmaker[Session]) -> None:
    """One upsert for the whole batch, committed before any message is acknowledged."""
    with sessions() as session, session.begin():
        results.write_outcomes(session, rows)


def log_job(rows: Sequence[dict[str, Any]], classifier: Classifier, t: Timings) -> None:
    """One line per job: what happened to it and where its time went."""
    failed = sum(r["status"] == "failed" for r in rows)
    phases = ", ".join(f"{name} {ms:.0f} ms" for name, ms in t.ms.items())
    log.info(
        "batch of %d predicted with %s; %d rows (%d failed); %s",
        t.predicted,
        classifier.version,
        len(rows),
        failed,
        phases,
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
