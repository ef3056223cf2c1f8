"""Thin Celery tasks: parse arguments, call the pipeline, acknowledge, report to Flower."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import Any

from celery import signals
from celery.worker.request import Request
from sqlalchemy.exc import DBAPIError

from db.session import is_unavailable
from worker import (
    control,  # noqa: F401  (registers the crackq_model command)
    deadletter,
)
from worker.app import CLASSIFY_MANY_TASK, CLASSIFY_TASK, FINE_TUNE_TASK, INFERENCE_QUEUE, app
from worker.batcher import BatchTask
from worker.enqueue import enqueue_rows
from worker.finetune import execute_run
from worker.messages import ClassifyArgs, ClassifyManyArgs, InvalidMessage, check_id, parse
from worker.pipeline import Item, StorageUnavailable, classify
from worker.runtime import close_runtime, get_runtime, get_sessions
from worker.settings import get_settings

log = logging.getLogger(__name__)


@signals.worker_shutdown.connect(weak=False)
@signals.worker_process_shutdown.connect(weak=False)
def release_runtime(**_: Any) -> None:
    """Warm shutdown, once Celery's pool has drained: release the served model in order.

    Sent on the main thread, which loaded the model (runtime.Runtime.close says why that
    matters); a prefork child gets worker_process_shutdown instead.
    """
    close_runtime()


def to_item(args: ClassifyArgs, default_id: str, batch_id: str | None = None) -> Item:
    """The item a message asks for; InvalidMessage when the id it falls back to is unusable."""
    request_id = args.request_id or check_id(default_id, "task id (used as request id)")
    return Item(
        request_id=request_id,
        image_ref=args.image_ref,
        batch_id=args.batch_id or batch_id,
        submitted_at=args.submitted_at,
    )


def refuse(req: Request, reason: str) -> None:
    """Dead-letter one message and ack it; while the database is away, requeue it instead."""
    log.error("refusing message %s: %s", req.id, reason)
    if deadletter.record(req.id, req.name, reason, {"args": req.args, "kwargs": req.kwargs}):
        req.send_event("task-failed", exception=reason, traceback="")
        req.acknowledge()
    else:
        time.sleep(deadletter.OUTAGE_PAUSE_S)
        req.reject(requeue=True)


class ClassifyTask(BatchTask):
    """`crackq.classify`: messages of one reference each, run in batches.

    Every message ends acknowledged, as a result row or as a dead letter with its reason;
    only an unreachable database returns messages to the queue.
    """

    def batch_policy(self) -> tuple[int, float, int]:
        settings = get_settings()
        return settings.batch_size, settings.batch_wait_ms / 1000.0, 2

    def prepare(self) -> None:
        # Celery builds a strategy for every registered task in every worker; only one
        # that consumes the inference queue needs the model (a training worker runs under
        # tcmalloc, which OpenVINO cannot load beside, and needs no served model).
        if INFERENCE_QUEUE in self.app.amqp.queues.consume_from:
            get_runtime()  # load the model before the first message is taken

    def run_batch(self, requests: Sequence[Request]) -> None:
        t0 = time.perf_counter()
        accepted: list[tuple[Request, Item]] = []
        for req in requests:
            try:
                item = to_item(parse(ClassifyArgs, req.args, req.kwargs), req.id)
            except InvalidMessage as exc:
                refuse(req, f"invalid arguments: {exc}")
            except Exception as exc:  # whatever else a hostile message reaches
                log.exception("unreadable message %s", req.id)
                refuse(req, f"unreadable message: {exc!r}")
            else:
                req.send_event("task-started")
                accepted.append((req, item))
        if accepted:
            self.settle(accepted, t0)

    def settle(self, accepted: Sequence[tuple[Request, Item]], t0: float) -> None:
        """Classify, then ack each message; a batch that fails is retried one by one."""
        try:
            rows = classify([item for _, item in accepted], get_runtime())
        except StorageUnavailable:
            log.error("database unavailable: returning %d messages to the queue", len(accepted))
            for req, _ in accepted:
                req.reject(requeue=True)
            return
        except Exception as exc:  # a bug or a poison the checks missed: find who, once
            if len(accepted) == 1:
                log.exception("message %s failed on its own", accepted[0][0].id)
                refuse(accepted[0][0], f"internal error: {exc!r}")
                return
            log.exception("batch of %d failed; retrying its messages one by one", len(accepted))
            for pair in accepted:
                self.settle([pair], t0)
            return
        report(accepted, rows, time.perf_counter() - t0)


def report(
    accepted: Sequence[tuple[Request, Item]], rows: Sequence[dict[str, Any]], runtime: float
) -> None:
    """Ack every message after its row is committed and tell Flower how it ended."""
    by_id = {r["request_id"]: r for r in rows}
    for req, item in accepted:
        req.acknowledge()
        row = by_id.get(item.request_id)
        if row is not None and row["status"] == "failed":
            req.send_event(
                "task-failed",
                exception=f"{row['error_code']}: {row['error_message']}",
                traceback="",
            )
        else:
            result = (
                {"label": row["label"], "confidence": row["confidence"]} if row else "duplicate"
            )
            req.send_event("task-succeeded", result=repr(result), runtime=runtime)


def dead_letter_or_retry(task: Any, reason: str, payload: dict[str, Any]) -> None:
    """For tasks outside the batcher: store the dead letter, or retry while the database is away."""
    log.error("refusing message %s: %s", task.request.id, reason)
    if not deadletter.record(task.request.id, task.name, reason, payload):
        raise StorageUnavailable("dead letter not stored: database unavailable")


@app.task(
    name=CLASSIFY_TASK,
    base=ClassifyTask,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(StorageUnavailable,),
    retry_backoff=True,
    max_retries=None,
)
def classify_one(self: ClassifyTask, **kwargs: Any) -> None:
    """Classify one image reference (kwargs per messages.ClassifyArgs).

    Runs only where the pool cannot batch; the threads pool goes through run_batch.
    """
    try:
        item = to_item(parse(ClassifyArgs, (), kwargs), self.request.id)
    except InvalidMessage as exc:
        dead_letter_or_retry(self, f"invalid arguments: {exc}", {"kwargs": kwargs})
        return
    classify([item], get_runtime())


@app.task(
    name=CLASSIFY_MANY_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(StorageUnavailable,),
    retry_backoff=True,
    max_retries=None,
)
def classify_many(self: Any, **kwargs: Any) -> dict[str, int]:
    """Fan a bulk message out: one queued row and one `crackq.classify` message per item.

    The task itself takes seconds however long the list: the items are classified in
    batches beside single-photo traffic, each acknowledged on its own, so no bulk message
    can outlive the visibility timeout. Item ids default to `<task id>:<index>`.
    """
    try:
        args: ClassifyManyArgs = parse(ClassifyManyArgs, (), kwargs)
        items = [
            to_item(a, f"{self.request.id}:{i}", args.batch_id) for i, a in enumerate(args.items)
        ]
    except InvalidMessage as exc:
        dead_letter_or_retry(self, f"invalid arguments: {exc}", {"kwargs": kwargs})
        return {"items": 0, "enqueued": 0}
    now = dt.datetime.now(dt.timezone.utc)
    rows = [
        {
            "request_id": i.request_id,
            "image_ref": i.image_ref,
            "batch_id": i.batch_id,
            "submitted_at": i.submitted_at or now,
        }
        for i in items
    ]
    try:
        enqueued, _finished = enqueue_rows(self.app, get_sessions(), rows)
    except DBAPIError as exc:
        if is_unavailable(exc):
            raise StorageUnavailable(str(exc)) from exc
        raise
    return {"items": len(items), "enqueued": enqueued}


def progress_line(meta: dict[str, Any]) -> str:
    """One line of training progress for Flower, e.g. `epoch 1/5 step 40/2000 loss 0.2103`."""
    parts = [f"{meta.get('event', 'step')}:"]
    if "epoch" in meta:
        parts.append(f"epoch {meta['epoch']}/{meta.get('epochs', '?')}")
    if "step" in meta:
        parts.append(f"step {meta['step']}/{meta.get('steps', '?')}")
    for key, fmt in (("loss", "loss {:.4f}"), ("images_per_s", "{:.1f} img/s")):
        if isinstance(meta.get(key), int | float):
            parts.append(fmt.format(meta[key]))
    if isinstance(meta.get("eta_s"), int | float):
        parts.append(f"eta {meta['eta_s']:.0f} s")
    return " ".join(parts)


@app.task(
    name=FINE_TUNE_TASK,
    bind=True,
    acks_late=False,  # acked on receipt: a long run is never redelivered and repeated
    ignore_result=False,  # PROGRESS state + meta in the result backend, for AsyncResult
)
def fine_tune_task(self: Any, run_id: str) -> dict[str, Any]:
    """Run the queued training run `run_id` (see worker.finetune)."""

    def report(meta: dict[str, Any]) -> None:
        self.update_state(state="PROGRESS", meta=meta)
        # Flower's task view is built from events, not from the backend: this custom event
        # shows the task as PROGRESS with the progress line in its result column.
        self.send_event("task-progress", result=progress_line(meta))

    return execute_run(run_id, get_settings(), get_sessions(), report)
