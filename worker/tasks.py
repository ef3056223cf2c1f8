"""Thin Celery tasks: parse arguments, call the pipeline, acknowledge, report to Flower."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from celery.worker.request import Request

from worker import (
    control,  # noqa: F401  (registers the crackq_model command)
    deadletter,
)
from worker.app import CLASSIFY_MANY_TASK, CLASSIFY_TASK, FINE_TUNE_TASK, INFERENCE_QUEUE, app
from worker.batcher import BatchTask
from worker.finetune import execute_run
from worker.messages import ClassifyArgs, ClassifyManyArgs, InvalidMessage, parse
from worker.pipeline import Item, StorageUnavailable, classify
from worker.runtime import get_runtime, get_sessions
from worker.settings import get_settings

log = logging.getLogger(__name__)
BULK_CHUNK = 256


def to_item(args: ClassifyArgs, default_id: str, batch_id: str | None = None) -> Item:
    return Item(
        request_id=args.request_id or default_id,
        image_ref=args.image_ref,
        batch_id=args.batch_id or batch_id,
        submitted_at=args.submitted_at,
    )


class ClassifyTask(BatchTask):
    """`crackq.classify`: messages of one reference each, run in batches."""

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
        items: list[Item] = []
        valid: list[Request] = []
        for req in requests:
            try:
                items.append(to_item(parse(ClassifyArgs, req.args, req.kwargs), req.id))
                valid.append(req)
            except InvalidMessage as exc:
                log.error("refusing message %s: %s", req.id, exc)
                payload = {"args": list(req.args or ()), "kwargs": req.kwargs}
                if not deadletter.record(req.id, req.name, f"invalid arguments: {exc}", payload):
                    req.reject(requeue=True)  # kept in the queue until it can be recorded
                    continue
                req.send_event("task-failed", exception=f"InvalidMessage({exc})", traceback="")
                req.acknowledge()
            else:
                req.send_event("task-started")
        if not valid:
            return
        try:
            rows = classify(items, get_runtime())
        except StorageUnavailable:
            log.error("database unavailable: returning %d messages to the queue", len(valid))
            for req in valid:
                req.reject(requeue=True)
            return
        by_id = {r["request_id"]: r for r in rows}
        runtime = time.perf_counter() - t0
        for req, item in zip(valid, items, strict=True):
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


@app.task(
    name=CLASSIFY_TASK,
    base=ClassifyTask,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def classify_one(self: ClassifyTask, **kwargs: Any) -> None:
    """Classify one image reference (kwargs per messages.ClassifyArgs).

    Runs only where the pool cannot batch; the threads pool goes through run_batch.
    """
    try:
        args = parse(ClassifyArgs, (), kwargs)
    except InvalidMessage as exc:
        deadletter.record(
            self.request.id, self.name, f"invalid arguments: {exc}", {"kwargs": kwargs}
        )
        return
    classify([to_item(args, self.request.id)], get_runtime())


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
    """Classify many references from one message, in model-sized chunks."""
    try:
        args: ClassifyManyArgs = parse(ClassifyManyArgs, (), kwargs)
    except InvalidMessage as exc:
        deadletter.record(
            self.request.id, self.name, f"invalid arguments: {exc}", {"kwargs": kwargs}
        )
        return {"items": 0, "written": 0}
    items = [to_item(a, f"{self.request.id}:{i}", args.batch_id) for i, a in enumerate(args.items)]
    written = 0
    for start in range(0, len(items), BULK_CHUNK):
        written += len(classify(items[start : start + BULK_CHUNK], get_runtime()))
    return {"items": len(items), "written": written}


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
