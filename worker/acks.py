"""Acknowledge a batch's messages with one Redis round trip instead of one per message.

kombu's Redis `QoS.ack` runs MULTI / ZREM / HDEL / EXEC for each delivery tag, and the
worker acks a whole batch (32 messages) right after committing its rows: 32 round trips
where one does. `acknowledge` removes every tag of the batch from the transport's unacked
index and hash in one pipeline, then lets each message go through Celery's own
`Request.acknowledge` (the request's state, the consumer's prefetch count, kombu's
in-memory record), whose Redis half finds those tags already gone and skips them.

The reliability contract is unchanged: this runs after the commit, and removing a tag
from the unacked hash is exactly what an ack is on this transport. If the pipeline fails
(Redis away), every message is acked the usual way, whose errors Celery logs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from celery.worker.request import Request
from kombu.transport.redis import QoS as RedisQoS

log = logging.getLogger(__name__)

_install_lock = threading.Lock()


class _Done:
    """Stands in for the pipeline of a tag already removed: nothing left to execute."""

    def execute(self) -> list[Any]:
        return []


class _SkipRemoved:
    """Wraps a QoS's `_remove_from_indices`: tags in `removed` were removed by a batch."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.removed: set[Any] = set()

    def __call__(self, delivery_tag: Any, pipe: Any = None) -> Any:
        try:
            self.removed.remove(delivery_tag)  # set.remove is atomic under the GIL
        except KeyError:
            return self.original(delivery_tag, pipe)
        return pipe if pipe is not None else _Done()


def _skipper(qos: RedisQoS) -> _SkipRemoved:
    with _install_lock:
        current = qos.__dict__.get("_remove_from_indices")
        if not isinstance(current, _SkipRemoved):
            current = _SkipRemoved(qos._remove_from_indices)
            qos._remove_from_indices = current  # type: ignore[method-assign]
        return current


def acknowledge(requests: Sequence[Request]) -> None:
    """Ack `requests` (rows committed): one pipeline per Redis channel, then Celery's ack."""
    pending = [req for req in requests if not req.acknowledged]
    groups: dict[int, tuple[Any, list[Request]]] = {}
    for req in pending:
        qos = getattr(getattr(req.message, "channel", None), "qos", None)
        groups.setdefault(id(qos), (qos, []))[1].append(req)
    for qos, group in groups.values():
        if isinstance(qos, RedisQoS) and len(group) > 1:
            _remove_together(qos, group)
        for req in group:
            req.acknowledge()


def _remove_together(qos: RedisQoS, group: list[Request]) -> None:
    tags = [req.message.delivery_tag for req in group]
    skip = _skipper(qos)
    try:
        with qos.pipe_or_acquire() as pipe:
            pipe.zrem(qos.unacked_index_key, *tags).hdel(qos.unacked_key, *tags).execute()
    except Exception as exc:  # Redis away: each ack below tries on its own and logs
        log.warning("batched ack of %d messages failed (%r); acking one by one", len(tags), exc)
        return
    skip.removed.update(tags)
