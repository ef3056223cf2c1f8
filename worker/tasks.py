"""Thin Celery tasks: parse arguments, call one plain function, retry only a database outage."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import signals

from worker import (
    control,  # noqa: F401  (registers the crackq_model command)
    deadletter,
    metrics,
    opsserver,
    outage,
    rescore,
    upkeep,
)
from worker.app import CLASSIFY_MANY_TASK, CLASSIFY_TASK, FINE_TUNE_TASK, app
from worker.classify_task import ClassifyTask, to_item
from worker.enqueue import enqueue_rows
from worker.finetune import execute_run
from worker.messages import ClassifyArgs, ClassifyManyArgs, InvalidMessage, parse
from worker.rows import asset_fields
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


@signals.worker_init.connect(weak=False)
def start_ops_endpoint(sender: Any = None, **_: Any) -> None:
    """/metrics, /healthz, /readyz from the start: readiness says what is still loading."""
    opsserver.start(get_settings(), get_sessions(), sender.app.amqp.queues.consume_from)


@signals.worker_ready.connect(weak=False)
def start_upkeep(sender: Any = None, **_: Any) -> None:
    """Publish what this worker holds and sweep what dead workers left (worker/upkeep.py)."""
    upkeep.start(sender, app, get_settings(), get_sessions())
    opsserver.consumer_ready(sender)


@signals.worker_shutting_down.connect(weak=False)
def not_ready(**_: Any) -> None:
    opsserver.stopping()


@signals.worker_shutdown.connect(weak=False)
def stop_upkeep(**_: Any) -> None:
    upkeep.stop()
    opsserver.stop()


def dead_letter_or_retry(task: Any, reason: str, payload: dict[str, Any]) -> None:
    """Store the dead letter of a task outside the batcher, or retry while the database is away."""
    log.error("refusing message %s: %s", task.request.id, reason)
    if deadletter.record(task.request.id, task.name, reason, payload):
        metrics.DEAD_LETTERS.inc()
    else:
        outage.retry_later(task, "dead letter not stored")


# Late acks: a message is acknowledged once its row is committed; a worker lost mid-task
# leaves it for redelivery, where the stored row makes it a no-op.
INFERENCE: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
}


@app.task(name=CLASSIFY_TASK, base=ClassifyTask, **INFERENCE)
def classify_one(self: ClassifyTask, **kwargs: Any) -> None:
    """Classify one image reference (kwargs per messages.ClassifyArgs).

    Runs only where the pool cannot batch; the threads pool goes through run_batch.
    """
    try:
        item = to_item(parse(ClassifyArgs, (), kwargs), self.request.id)
    except InvalidMessage as exc:
        dead_letter_or_retry(self, f"invalid arguments: {exc}", {"kwargs": kwargs})
        return
    with outage.retried(self):
        metrics.stored(get_runtime().classify_all([item]))


@app.task(name=CLASSIFY_MANY_TASK, **INFERENCE)
def classify_many(self: Any, **kwargs: Any) -> dict[str, int]:
    """Fan a bulk message out: one queued row and one `crackq.classify` message per item.

    The task itself takes seconds however long the list: the items are classified in
    batches beside single-photo traffic, each acknowledged on its own, so no bulk message
    can outlive the visibility timeout. Item ids default to `<task id>:<index>`. An item
    with a `rescore_version` re-scores its stored row: it is sent as the re-score message
    `crackq rescore` sends (worker.rescore.send), with no queued row of its own.
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
            "mode": i.mode,
            **asset_fields(i),
        }
        for i in items
        if i.rescore_version is None
    ]
    rescores: dict[str, list[dict[str, Any]]] = {}
    for i in items:
        if i.rescore_version is not None:
            row = {"request_id": i.request_id, "image_ref": i.image_ref, "mode": i.mode}
            rescores.setdefault(i.rescore_version, []).append(row)
    with outage.retried(self):
        enqueued = enqueue_rows(self.app, get_sessions(), rows)[0] if rows else 0
    for version, chunk in rescores.items():
        rescore.send(self.app, chunk, version)
        enqueued += len(chunk)
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

    return execute_run(run_id, get_settings(), get_sessions(), report, self.request.hostname)
