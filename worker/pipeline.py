"""The inspection flow, top-down: refs -> read/decode -> batch predict -> one write per batch."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.exc import DBAPIError, OperationalError

from db import results
from db.session import is_unavailable
from models.classifier import CLASSES, CRACK_INDEX, Classifier
from models.transforms import EvalPreset, stack
from worker.decode import CAMERA_FORMATS, decode_image
from worker.errors import ErrorCode, ImageError
from worker.runtime import Runtime
from worker.sources import SourceLimits, read_bytes

log = logging.getLogger(__name__)

_presets: dict[int, EvalPreset] = {}


def preset(size: int) -> EvalPreset:
    if size not in _presets:
        _presets[size] = EvalPreset(size)
    return _presets[size]


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


class StorageUnavailable(RuntimeError):
    """Results could not be written; the messages must not be acknowledged."""


def classify(items: Sequence[Item], rt: Runtime) -> list[dict[str, Any]]:
    """Classify `items` and store one row each; returns the rows written (skips finished ids).

    Reads and decodes run in the decode pool ahead of the model, so chunk k+1 is being
    decoded while chunk k is in the forward pass; the rows go out in one statement.
    Raises StorageUnavailable when the database stays unreachable: nothing is acked then.
    """
    started = now()
    todo = unfinished(items, rt)
    if not todo:
        return []
    classifier = rt.classifier()  # taken once: a model switch never splits a batch
    size = classifier.input_size
    max_pixels, formats = rt.settings.max_image_pixels, tuple(rt.settings.image_formats)
    futures = [
        rt.decode_pool.submit(load, item, rt.limits, max_pixels, size, formats) for item in todo
    ]
    rows: list[dict[str, Any]] = []
    for start in range(0, len(futures), rt.settings.batch_size):
        loaded = [f.result() for f in futures[start : start + rt.settings.batch_size]]
        rows.extend(predict_rows(loaded, classifier, rt, started))
    write_rows(rows, rt)
    return rows


def unfinished(items: Sequence[Item], rt: Runtime) -> list[Item]:
    """Items whose request id has no final row yet, first occurrence of each id only."""
    try:
        with rt.sessions() as session:
            done = results.finished_ids(session, (i.request_id for i in items))
    except (OperationalError, DBAPIError) as exc:  # the upsert stays idempotent without it
        log.warning("could not look up finished ids: %s", exc)
        done = set()
    seen: set[str] = set()
    todo = []
    for item in items:
        if item.request_id not in done and item.request_id not in seen:
            seen.add(item.request_id)
            todo.append(item)
    return todo


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
    loaded: Sequence[Loaded], classifier: Classifier, rt: Runtime, started: dt.datetime
) -> list[dict[str, Any]]:
    """One forward pass over the decodable items; a row for every item."""
    good = [x for x in loaded if x.pixels is not None]
    p_crack: list[float] = []
    infer_ms = 0.0
    if good:
        batch = stack([x.pixels for x in good])  # type: ignore[misc]
        with rt.forward_lock:  # one forward at a time: torch already uses every core
            t0 = time.perf_counter()
            probs = classifier.predict(batch)
            infer_ms = ms_since(t0)
        p_crack = probs[:, CRACK_INDEX].tolist()
        log.info(
            "batch of %d predicted in %.0f ms with %s", len(good), infer_ms, classifier.version
        )
    finished = now()
    probs_iter = iter(p_crack)
    rows = []
    for x in loaded:
        row = base_row(x, rt, started, finished)
        if x.error is None:
            p = next(probs_iter)
            label = CLASSES[CRACK_INDEX] if p >= 0.5 else CLASSES[1 - CRACK_INDEX]
            row.update(
                status="succeeded",
                label=label,
                confidence=max(p, 1.0 - p),
                crack_probability=p,
                model_version=classifier.version,
                inference_ms=infer_ms,
                batch_size=len(good),
            )
        else:
            row.update(
                status="failed", error_code=x.error.code.value, error_message=x.error.message[:2000]
            )
        rows.append(row)
    return rows


def base_row(x: Loaded, rt: Runtime, started: dt.datetime, finished: dt.datetime) -> dict[str, Any]:
    return {
        "request_id": x.item.request_id,
        "image_ref": x.item.image_ref,
        "batch_id": x.item.batch_id,
        "submitted_at": x.item.submitted_at,
        "started_at": started,
        "finished_at": finished,
        "decode_ms": x.decode_ms,
        "worker_host": rt.hostname,
    }


def write_rows(rows: list[dict[str, Any]], rt: Runtime, attempts: int = 6) -> None:
    """One upsert for the whole batch, retried with backoff while PostgreSQL is away."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            with rt.sessions() as session, session.begin():
                results.write_outcomes(session, rows)
            return
        except DBAPIError as exc:
            if not is_unavailable(exc):
                raise
            log.warning(
                "storing %d rows failed (attempt %d/%d): %s", len(rows), attempt, attempts, exc
            )
            if attempt == attempts:
                raise StorageUnavailable(str(exc)) from exc
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
