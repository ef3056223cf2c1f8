"""Self-healing against real Redis and PostgreSQL: what a live worker holds stays; the rest heals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from tests.worker.brokering import channel_on, row, take
from worker.enqueue import send
from worker.selfheal import (
    Sweeper,
    held_tags,
    ids_in_broker,
    lead,
    live_holds,
    publish_holds,
)

pytestmark = pytest.mark.usefixtures("clean_tables")
TTL = 0.5  # holds TTL and the youngest unacked message a sweep may restore


@pytest.fixture
def broker(redis_client) -> Iterator[Any]:
    with channel_on(redis_client) as channel:
        yield channel


def queued_ids(redis_client) -> set[str]:
    import json

    return {json.loads(m)["headers"]["id"] for m in redis_client.lrange("inference", 0, -1)}


def test_held_tags_are_what_the_consumer_has_not_acked(broker) -> None:
    tags = take(broker, ["a", "b"])
    assert sorted(held_tags(broker.qos)) == sorted(tags.values())
    broker.basic_ack(tags["a"])
    assert held_tags(broker.qos) == [tags["b"]]


def test_only_messages_no_live_worker_holds_go_back_after_two_sweeps(
    broker, redis_client, sessions
) -> None:
    from worker.app import app

    tags = take(broker, ["held", "orphan"])
    publish_holds(redis_client, "live@host:1", [tags["held"]], ttl_s=60)
    assert live_holds(redis_client) == {tags["held"]}
    sweeper = Sweeper(app, sessions, holds_ttl_s=TTL, lost_after_s=3600)
    time.sleep(TTL + 0.1)
    assert sweeper.sweep() == (0, 0)  # suspected once: not yet
    assert sweeper.sweep() == (1, 0)
    assert queued_ids(redis_client) == {"orphan"}
    assert redis_client.hkeys("unacked") == [tags["held"].encode()]
    # the live worker holds its message for minutes (a crack map): still nothing happens
    for _ in range(3):
        assert sweeper.sweep() == (0, 0)
    # then it dies: its holds expire and its message goes back too
    publish_holds(redis_client, "live@host:1", [tags["held"]], ttl_s=TTL)
    time.sleep(TTL + 0.1)
    assert [sweeper.sweep() for _ in range(2)] == [(0, 0), (1, 0)]
    assert queued_ids(redis_client) == {"orphan", "held"}
    assert redis_client.hlen("unacked") == 0 and redis_client.zcard("unacked_index") == 0


def test_an_ack_racing_the_sweep_restores_nothing(broker, redis_client, sessions) -> None:
    from worker.app import app

    tags = take(broker, ["acked"])
    sweeper = Sweeper(app, sessions, holds_ttl_s=TTL, lost_after_s=3600)
    time.sleep(TTL + 0.1)
    assert sweeper.sweep() == (0, 0)
    broker.basic_ack(tags["acked"])  # the worker finished after all
    sweeper.sweep()
    assert redis_client.llen("inference") == 0


def test_one_sweeper_at_a_time(redis_client, broker) -> None:
    assert lead(redis_client, "a", 0.5) and lead(redis_client, "a", 0.5)  # taken, renewed
    assert not lead(redis_client, "b", 0.5)
    time.sleep(0.6)  # a died: its lock expires
    assert lead(redis_client, "b", 0.5) and not lead(redis_client, "a", 0.5)


def test_rows_whose_message_is_lost_are_resent_and_only_those(
    broker, redis_client, sessions, engine
) -> None:
    from worker.app import app

    take(broker, ["unacked-1"])
    send(app, [row("queued-1")])
    with engine.begin() as conn:
        for rid in ("lost-1", "queued-1", "unacked-1", "young-1"):
            conn.execute(
                text(
                    "INSERT INTO results (request_id, image_ref, status, created_at) "
                    "VALUES (:r, '/x.jpg', 'queued', now() - make_interval(secs => :age))"
                ),
                {"r": rid, "age": 0 if rid == "young-1" else 120},
            )
    assert {"unacked-1", "queued-1"} <= ids_in_broker(broker)
    sweeper = Sweeper(app, sessions, holds_ttl_s=3600, lost_after_s=60)
    assert sweeper.sweep() == (0, 0)
    assert sweeper.sweep() == (0, 1)
    assert queued_ids(redis_client) == {"queued-1", "lost-1"}
    assert sweeper.sweep() == (0, 0)  # now in the queue: not sent again
