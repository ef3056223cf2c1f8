"""worker.transport against real Redis: waiting messages come in one script call, recorded as kombu would."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.transport import redis as kombu_redis

from tests.conftest import TEST_BROKER_URL
from worker.app import app
from worker.transport import Transport

EXCHANGE = Exchange("transport-test", type="direct")
QUEUE = Queue("transport-test", EXCHANGE, routing_key="transport-test")


def connect(batch: bool) -> Connection:
    return Connection(
        TEST_BROKER_URL,
        transport=Transport if batch else kombu_redis.Transport,
        transport_options={"batch_receive": batch, "visibility_timeout": 3600},
    )


@pytest.fixture
def redis(redis_client: Any) -> Iterator[Any]:
    redis_client.flushdb()
    yield redis_client
    redis_client.flushdb()


def publish(n: int) -> None:
    with connect(False) as conn:
        producer = Producer(conn.channel(), exchange=EXCHANGE, routing_key="transport-test")
        for i in range(n):
            producer.publish({"i": i}, declare=[QUEUE], serializer="json")


def receive(batch: bool, prefetch: int, turns: int) -> tuple[list[Any], Connection]:
    """Messages delivered in `turns` event-loop turns (drain_events calls), left unacked."""
    conn = connect(batch)
    got: list[Any] = []
    channel = conn.channel()
    channel.basic_qos(0, prefetch, False)
    Consumer(
        channel, [QUEUE], callbacks=[lambda body, msg: got.append(msg)], accept=["json"]
    ).consume()
    for _ in range(turns):
        conn.drain_events(timeout=2)
    return got, conn


def test_one_turn_takes_every_waiting_message_up_to_the_prefetch_room(redis: Any) -> None:
    publish(40)
    got, conn = receive(batch=True, prefetch=32, turns=1)
    try:
        assert [m.payload["i"] for m in got] == list(range(32))  # FIFO, and no more than the room
        assert redis.llen("transport-test") == 8
        # recorded exactly as kombu's QoS.append records: [payload, exchange, routing_key]
        assert redis.zcard("unacked_index") == 32 and redis.hlen("unacked") == 32
        for m in got:
            payload, exchange, routing_key = json.loads(redis.hget("unacked", m.delivery_tag))
            assert payload == m._raw and payload["properties"]["delivery_tag"] == m.delivery_tag
            assert (exchange, routing_key) == ("transport-test", "transport-test")
        for m in got[:10]:
            m.ack()
        assert redis.hlen("unacked") == 22 and redis.zcard("unacked_index") == 22
    finally:
        conn.release()


def test_a_message_that_came_to_a_waiting_brpop_costs_no_script_call(redis: Any) -> None:
    conn = connect(True)
    got: list[Any] = []
    channel = conn.channel()
    channel.basic_qos(0, 32, False)
    calls: list[int] = []
    script = channel._receive_script
    channel._receive_script = lambda **kw: calls.append(1) or script(**kw)
    Consumer(channel, [QUEUE], callbacks=[lambda body, msg: got.append(msg)]).consume()
    timer = threading.Timer(0.3, publish, (1,))  # arrives while the BRPOP blocks
    timer.start()
    try:
        conn.drain_events(timeout=5)
        assert len(got) == 1 and calls == []
        publish(3)  # waiting when the next BRPOP is sent: it answers at once
        conn.drain_events(timeout=5)
        assert len(got) == 4 and calls == [1]
    finally:
        timer.join()
        conn.release()


def test_kombus_own_transport_takes_one_message_a_turn(redis: Any) -> None:
    publish(5)
    got, conn = receive(batch=False, prefetch=32, turns=1)
    conn.release()
    assert len(got) == 1


def test_unacked_messages_go_back_to_the_queue_when_the_channel_closes(redis: Any) -> None:
    publish(12)
    got, conn = receive(batch=True, prefetch=10, turns=1)
    assert len(got) == 10
    got[0].ack()
    conn.release()  # kombu restores what was delivered and not acked, as at worker shutdown
    assert redis.llen("transport-test") == 11
    assert redis.hlen("unacked") == 0
    again, conn = receive(batch=True, prefetch=32, turns=1)
    conn.release()
    assert sorted(m.payload["i"] for m in again) == list(range(1, 12))


def test_a_queue_entry_that_is_not_a_message_is_dropped_and_the_rest_delivered(redis: Any) -> None:
    publish(2)
    redis.lpush("transport-test", b"not json at all")  # LPUSH: it is taken after the two
    publish(1)
    got, conn = receive(batch=True, prefetch=32, turns=1)
    try:
        assert [m.payload["i"] for m in got] == [0, 1, 0]
        assert redis.llen("transport-test") == 0
        assert redis.hlen("unacked") == 3  # the stray entry was never recorded
    finally:
        conn.release()


def test_the_workers_redis_urls_use_this_transport_and_rediss_keeps_kombus() -> None:
    with app.connection_for_read() as conn:
        assert isinstance(conn.transport, Transport)
        assert conn.as_uri().startswith("redis://")  # the log line operators read
    with Connection("rediss://127.0.0.1:6379/0") as tls:
        assert type(tls.transport) is kombu_redis.Transport
