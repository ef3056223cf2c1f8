"""The producer API: record `queued` rows, then put one message per reference on Redis."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db import results
from models.formats import IMAGE_SUFFIXES
from worker.app import CLASSIFY_TASK, INFERENCE_QUEUE
from worker.messages import AssetFields


@dataclass(frozen=True)
class Submission:
    """What `submit` did: every request id, and how many messages it sent."""

    request_ids: list[str]
    batch_id: str
    enqueued: int
    already_finished: int


def refs_from_dir(folder: Path) -> list[str]:
    """Every image file below `folder` (recursively, sorted), as absolute paths."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory")
    return sorted(
        str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def refs_from_file(path: Path) -> list[str]:
    """One reference per line; blank lines and lines starting with # are skipped."""
    lines = Path(path).read_text().splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def submit(
    app: Celery,
    sessions: sessionmaker[Session],
    refs: Sequence[str],
    *,
    request_ids: Sequence[str] | None = None,
    batch_id: str | None = None,
    mode: str = "auto",
    asset: AssetFields | None = None,
) -> Submission:
    """Record each reference as `queued` (committed first), then enqueue it.

    `mode` (auto, patch or map) says whether photos are classified whole or mapped tile
    by tile; auto maps photos much larger than the model's training patch. `asset` (asset
    and inspection ids, capture time, metadata) is stored with every reference's row.

    Resubmitting a request id never creates a second row: ids that already have a final
    result are not sent again; ids still queued are re-sent (the worker deduplicates).
    """
    if request_ids is not None and len(request_ids) != len(refs):
        raise ValueError("request_ids and refs differ in length")
    ids = list(request_ids) if request_ids is not None else [str(uuid.uuid4()) for _ in refs]
    batch_id = batch_id or f"batch-{uuid.uuid4()}"
    submitted_at = dt.datetime.now(dt.timezone.utc)
    rows = [
        {
            "request_id": i,
            "image_ref": r,
            "batch_id": batch_id,
            "submitted_at": submitted_at,
            "mode": mode,
            **(asset or AssetFields()).model_dump(),
        }
        for i, r in zip(ids, refs, strict=True)
    ]
    enqueued, finished = enqueue_rows(app, sessions, rows)
    return Submission(ids, batch_id, enqueued, finished)


def enqueue_rows(
    app: Celery, sessions: sessionmaker[Session], rows: Sequence[dict]
) -> tuple[int, int]:
    """Record `rows` as queued (committed first), then send those without a final result.

    Returns (messages sent, request ids already finished).
    """
    with sessions() as session, session.begin():
        results.insert_queued(session, rows)
        finished = results.finished_ids(session, [row["request_id"] for row in rows])
    todo = [row for row in rows if row["request_id"] not in finished]
    send(app, todo)
    return len(todo), len(finished)


def send(app: Celery, rows: Iterable[dict]) -> None:
    """Publish one `crackq.classify` message per row over one pooled connection.

    A row's `mode` travels only when it is not the default (auto), and its asset fields
    only when set, so messages of producers that use neither stay as they were.
    """
    with app.producer_or_acquire() as producer:
        for row in rows:
            kwargs = {
                "image_ref": row["image_ref"],
                "request_id": row["request_id"],
                "batch_id": row["batch_id"],
                "submitted_at": row["submitted_at"] and row["submitted_at"].isoformat(),
            }
            if row.get("mode", "auto") != "auto":
                kwargs["mode"] = row["mode"]
            kwargs.update(asset_kwargs(row))
            app.send_task(
                CLASSIFY_TASK,
                kwargs=kwargs,
                queue=INFERENCE_QUEUE,
                producer=producer,
                task_id=row["request_id"],  # Flower shows tasks under the request id
                ignore_result=True,
            )


def asset_kwargs(row: dict) -> dict[str, Any]:
    """A row's asset fields that are set, as a message carries them (messages.AssetFields)."""
    kwargs = {name: row.get(name) for name in AssetFields.model_fields}
    if kwargs["captured_at"] is not None:
        kwargs["captured_at"] = kwargs["captured_at"].isoformat()
    return {name: value for name, value in kwargs.items() if value is not None}
