"""Gathers individually enqueued classify messages into batches (a Celery task strategy).

Celery hands each message to a task's *strategy* in the consumer. Ours buffers the
requests instead of running them one by one, and hands a batch to the pool when
  - the buffer holds `max_batch` requests, or
  - nothing is in flight (the model and the decoders are idle): a lone photo goes at
    once, because waiting for company would only add latency, or
  - a pool slot is free and the oldest buffered request has waited `max_wait_s`.
While one batch is in the model, the next fills up, so batches grow with the load.
Each message is acknowledged only after its row is committed (late ack); if the
worker dies first, the broker redelivers it and the idempotent upsert keeps one row.
Requires the `threads` pool: the batch runs in this process, beside the model.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from celery import Task, signals
from celery.exceptions import InvalidTaskError
from celery.utils.imports import symbol_by_name
from celery.worker.request import Request, create_request_cls
from celery.worker.strategy import default as default_strategy
from celery.worker.strategy import hybrid_to_proto2, proto1_to_proto2
from kombu.exceptions import ContentDisallowed, DecodeError

log = logging.getLogger(__name__)

BatchRunner = Callable[[Sequence[Request]], None]


class Batcher:
    """The buffer and flush policy for one batched task in one worker process."""

    def __init__(
        self,
        submit: Callable[[Callable[[], None]], Any],
        run: BatchRunner,
        max_batch: int,
        max_wait_s: float,
        max_inflight: int,
    ) -> None:
        self._submit = submit
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_inflight = max_inflight
        self._buffer: deque[tuple[float, Request]] = deque()
        self._inflight = 0
        self._lock = threading.Lock()
        self.largest_batch = 0
        self.batches = 0

    def add(self, request: Request) -> None:
        with self._lock:
            self._buffer.append((time.monotonic(), request))
        self.flush()

    def flush(self) -> None:
        """Dispatch every batch the policy allows now."""
        while True:
            with self._lock:
                batch = self._take()
                if not batch:
                    return
                self._inflight += 1
                self.batches += 1
                self.largest_batch = max(self.largest_batch, len(batch))
            self._submit(functools.partial(self._execute, batch))

    def _take(self) -> list[Request]:
        if not self._buffer or self._inflight >= self.max_inflight:
            return []
        full = len(self._buffer) >= self.max_batch
        idle = self._inflight == 0
        waited = time.monotonic() - self._buffer[0][0] >= self.max_wait_s
        if not (full or idle or waited):
            return []
        n = min(self.max_batch, len(self._buffer))
        return [self._buffer.popleft()[1] for _ in range(n)]

    def _execute(self, batch: list[Request]) -> None:
        try:
            self._run(batch)
        except Exception:  # the runner acks/rejects; this only keeps the slot accounting
            log.exception("batch of %d failed", len(batch))
        finally:
            with self._lock:
                self._inflight -= 1
            self.flush()

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)


class BatchTask(Task):
    """A Task whose messages are run in batches by `run_batch(requests)`."""

    abstract = True
    batcher: Batcher | None = None

    def batch_policy(self) -> tuple[int, float, int]:
        """(largest batch, longest wait in seconds, batches in flight at once)."""
        return 32, 0.02, 2

    def run_batch(self, requests: Sequence[Request]) -> None:
        raise NotImplementedError

    def prepare(self) -> None:
        """Called once in the worker process before it consumes (e.g. load the model)."""

    def Strategy(self, task: BatchTask, app: Any, consumer: Any) -> Callable[..., None]:  # noqa: N802
        pool = consumer.pool
        if not hasattr(pool, "executor"):
            log.warning(
                "%s: the %s pool cannot batch in-process; running messages one by one "
                "(start inference workers with --pool threads)",
                task.name,
                type(pool).__name__,
            )
            return default_strategy(task, app, consumer)
        max_batch, max_wait_s, max_inflight = task.batch_policy()
        task.prepare()
        batcher = Batcher(
            submit=pool.executor.submit,
            run=task.run_batch,
            max_batch=max_batch,
            max_wait_s=max_wait_s,
            max_inflight=max_inflight,
        )
        task.batcher = batcher
        tick = max(max_wait_s / 2, 0.002)
        consumer.timer.call_repeatedly(tick, batcher.flush, priority=5)
        return message_handler(task, app, consumer, batcher)


def message_handler(
    task: BatchTask, app: Any, consumer: Any, batcher: Batcher
) -> Callable[..., None]:
    """The consumer's callback for `task`: build each request, announce it, buffer it."""
    build = request_builder(task, app, consumer)
    eventer = consumer.event_dispatcher
    send_event = eventer.send if eventer and eventer.enabled and task.send_events else None

    def task_message_handler(
        message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any
    ) -> None:
        try:
            req = build(message, body, ack, reject)
        except (InvalidTaskError, ContentDisallowed, DecodeError):
            raise  # Celery's consumer dead-letters these (worker.deadletter)
        except Exception as exc:  # a hostile header or body: one dead letter, not a crash
            raise InvalidTaskError(f"malformed message: {exc!r}") from exc
        signals.task_received.send(sender=consumer, request=req)
        if send_event:
            send_event(
                "task-received",
                uuid=req.id,
                name=req.name,
                args=req.argsrepr,
                kwargs=req.kwargsrepr,
                root_id=req.root_id,
                parent_id=req.parent_id,
                retries=req.request_dict.get("retries", 0),
            )
        batcher.add(req)

    return task_message_handler


def request_builder(task: BatchTask, app: Any, consumer: Any) -> Callable[..., Request]:
    """A function making Celery's Request of `task` from a message in any protocol version."""
    hostname, eventer = consumer.hostname, consumer.event_dispatcher
    req_cls = create_request_cls(
        symbol_by_name(task.Request), task, consumer.pool, hostname, eventer, app=app
    )
    # A batch may ack after the broker connection it came on was lost; kombu's Redis
    # channel then raises AttributeError (its transport is detached), which would stop the
    # worker. Logged instead: the message stays unacked in Redis and comes back after the
    # visibility timeout, where the stored row makes it a no-op.
    ack_errors = (*consumer.connection_errors, AttributeError)

    def build(message: Any, body: Any, ack: Any, reject: Any) -> Request:
        if body is None and "args" not in message.payload:
            body, headers, decoded, utc = (
                message.body,
                message.headers,
                False,
                app.uses_utc_timezone(),
            )
        elif "args" in message.payload:
            body, headers, decoded, utc = hybrid_to_proto2(message, message.payload)
        else:
            body, headers, decoded, utc = proto1_to_proto2(message, body)
        return req_cls(
            message,
            on_ack=ack,
            on_reject=reject,
            app=app,
            hostname=hostname,
            eventer=eventer,
            task=task,
            connection_errors=ack_errors,
            body=body,
            headers=headers,
            decoded=decoded,
            utc=utc,
        )

    return build
