"""A batch's acks: one Redis pipeline removes them all, Celery's own ack path still runs."""

from __future__ import annotations

from typing import Any

from celery.worker.request import Request

from tests.worker.brokering import channel_on, take
from worker import acks


def requests_for(channel: Any, ids: list[str]) -> list[Request]:
    """Celery requests for messages taken off the queue unacked, acking as a worker does."""
    import worker.tasks  # noqa: F401  (registers crackq.classify)
    from worker.app import app

    take(channel, ids)
    held = channel.qos._delivered.values()
    return [Request(m, on_ack=m.ack_log_error, app=app) for m in held]


def test_a_batch_is_removed_from_the_unacked_records_in_one_pipeline(redis_client) -> None:
    with channel_on(redis_client) as channel:
        reqs = requests_for(channel, [f"ack-{i}" for i in range(32)])
        assert redis_client.hlen("unacked") == 32
        acks.acknowledge(reqs)
        assert redis_client.hlen("unacked") == 0 and redis_client.zcard("unacked_index") == 0
        assert all(req.acknowledged and req.message.acknowledged for req in reqs)
        channel.qos._flush()  # kombu drops acked messages from its record lazily
        assert not channel.qos._delivered  # its in-memory record followed
        # every Celery ack found its tag already removed: no per-message round trip
        skip = channel.qos._remove_from_indices
        assert isinstance(skip, acks._SkipRemoved) and not skip.removed


def test_a_message_acked_on_its_own_still_reaches_redis(redis_client) -> None:
    """After a batch installed the skip, other acks (dead letters, one-by-one) still work."""
    with channel_on(redis_client) as channel:
        first, *rest = requests_for(channel, [f"one-{i}" for i in range(3)])
        acks.acknowledge(rest)
        assert redis_client.hlen("unacked") == 1
        first.acknowledge()
        assert redis_client.hlen("unacked") == 0


def test_a_failed_pipeline_falls_back_to_acking_one_by_one(redis_client, monkeypatch) -> None:
    with channel_on(redis_client) as channel:
        reqs = requests_for(channel, [f"down-{i}" for i in range(4)])

        original, calls = channel.qos.pipe_or_acquire, []

        def down_once(*args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            if len(calls) == 1:  # the batch's pipeline
                raise ConnectionError("redis went away")
            return original(*args, **kwargs)

        monkeypatch.setattr(channel.qos, "pipe_or_acquire", down_once)
        acks.acknowledge(reqs)
        assert redis_client.hlen("unacked") == 0  # each ack removed its own tag
        assert all(req.acknowledged for req in reqs) and len(calls) == 1 + 4
