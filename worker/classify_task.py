"""The batched `crackq.classify` task: each message ends as a row, a dead letter, or requeued."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

from celery.worker.request import Request

from worker import acks, deadletter, metrics, outage
from worker.app import INFERENCE_QUEUE
from worker.batcher import BatchTask
from worker.forward import ForwardClosed
from worker.jobs import Item
from worker.messages import ClassifyArgs, InvalidMessage, check_id, parse
from worker.runtime import get_runtime
from worker.settings import get_settings

log = logging.getLogger(__name__)


def to_item(args: ClassifyArgs, default_id: str, batch_id: str | None = None) -> Item:
    """The item a message asks for; InvalidMessage when the id it falls back to is unusable."""
    request_id = args.request_id or check_id(default_id, "task id (used as request id)")
    return Item(
        request_id=request_id,
        image_ref=args.image_ref,
        batch_id=args.batch_id or batch_id,
        submitted_at=args.submitted_at,
        mode=args.mode,
        asset_id=args.asset_id,
        inspection_id=args.inspection_id,
        captured_at=args.captured_at,
        metadata=args.metadata,
        rescore_version=args.rescore_version,
    )


class ClassifyTask(BatchTask):
    """`crackq.classify`: messages of one reference each, run in batches.

    Every message ends acknowledged, as a result row or as a dead letter with its reason;
    only an unreachable database returns messages to the queue.
    """

    streak = outage.Streak()

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
        accepted = [(req, item) for req in requests if (item := self.accept(req)) is not None]
        for group in by_version(accepted):  # live photos first: re-scores never delay them
            if group[0][1].rescore_version is None:
                self.settle(group, t0)
            else:  # on the re-score lane: this batch's slot is free for live photos at once
                get_runtime().rescore_lane.put(functools.partial(self.settle, group, t0))

    def accept(self, req: Request) -> Item | None:
        """The item `req` asks for, or None when it was refused as a dead letter."""
        try:
            item = to_item(parse(ClassifyArgs, req.args, req.kwargs), req.id)
        except InvalidMessage as exc:
            self.refuse(req, f"invalid arguments: {exc}")
            return None
        except Exception as exc:  # whatever else a hostile message reaches
            log.exception("unreadable message %s", req.id)
            self.refuse(req, f"unreadable message: {exc!r}")
            return None
        req.send_event("task-started")
        return item

    def settle(self, accepted: Sequence[tuple[Request, Item]], t0: float) -> None:
        """Classify, then ack each message; a batch that fails is retried one by one.

        Photos to map go to the process's map lane; their messages are acked when it has
        stored their rows, and the batch's slot is free for the next batch meanwhile.
        """
        runtime = get_runtime()
        try:
            done = runtime.classify([item for _, item in accepted])
        except Exception as exc:
            self.failed(accepted, exc, t0)
            return
        self.streak.ended()
        later = {x.item.request_id for x in done.to_map}
        report([p for p in accepted if p[1].request_id not in later], done.rows, _since(t0))
        for loaded in done.to_map:
            mine = [p for p in accepted if p[1].request_id == loaded.item.request_id]
            runtime.map_later(loaded, done.classifier, functools.partial(self.mapped, mine, t0))

    def mapped(
        self,
        accepted: Sequence[tuple[Request, Item]],
        t0: float,
        row: dict[str, Any] | None,
        exc: BaseException | None,
    ) -> None:
        """The map lane's word on one photo: ack its messages, or handle the failure."""
        if row is not None:
            self.streak.ended()
            report(accepted, [row], _since(t0))
        elif isinstance(exc, Exception):
            self.failed(accepted, exc, t0)
        else:  # the worker is stopping: left unacked, the broker redelivers them
            log.info("map of %s interrupted: %r", accepted[0][1].request_id, exc)

    def failed(self, accepted: Sequence[tuple[Request, Item]], exc: Exception, t0: float) -> None:
        """An outage requeues the batch later; anything else is narrowed to its culprit."""
        if isinstance(exc, ForwardClosed):
            log.info("batch of %d interrupted by shutdown; left for redelivery", len(accepted))
        elif outage.is_outage(exc):
            outage.requeue_later([req for req, _ in accepted], self.streak.failed(), exc)
        elif len(accepted) == 1 or len({item.request_id for _, item in accepted}) == 1:
            log.exception("message %s failed on its own", accepted[0][0].id)
            for req, _ in accepted:  # a bug or a poison the checks missed: found
                self.refuse(req, f"internal error: {exc!r}")
        else:
            log.exception("batch of %d failed; retrying its messages one by one", len(accepted))
            for pair in accepted:
                self.settle([pair], t0)

    def refuse(self, req: Request, reason: str) -> None:
        """Dead-letter one message and ack it; while the database is away, requeue it later."""
        log.error("refusing message %s: %s", req.id, reason)
        if deadletter.record(req.id, req.name, reason, {"args": req.args, "kwargs": req.kwargs}):
            metrics.DEAD_LETTERS.inc()
            req.send_event("task-failed", exception=reason, traceback="")
            req.acknowledge()
        else:
            outage.requeue_later([req], self.streak.failed(), "dead letter not stored")


def by_version(
    accepted: Sequence[tuple[Request, Item]],
) -> list[list[tuple[Request, Item]]]:
    """The live items, then the re-scores of each version: one model answers each group."""
    groups: dict[str | None, list[tuple[Request, Item]]] = {None: []}
    for pair in accepted:
        groups.setdefault(pair[1].rescore_version, []).append(pair)
    return [group for group in groups.values() if group]


def _since(t0: float) -> float:
    return time.perf_counter() - t0


def report(
    accepted: Sequence[tuple[Request, Item]], rows: Sequence[dict[str, Any]], runtime: float
) -> None:
    """Ack every message after its row is committed and tell Flower how it ended."""
    by_id = {r["request_id"]: r for r in rows}
    metrics.stored(rows)
    acks.acknowledge([req for req, _ in accepted])
    for req, item in accepted:
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
