"""A kombu channel on the test Redis db, and messages taken off the queue unacked, as a worker would."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from worker.enqueue import send
from worker.selfheal import HOLDS, LEADER


@contextmanager
def channel_on(redis_client: Any) -> Iterator[Any]:
    """A kombu channel with no queue, unacked message or holds left over, before or after."""
    from worker.app import app

    def wipe() -> None:
        redis_client.delete("inference", "training", "unacked", "unacked_index", LEADER)
        for key in redis_client.scan_iter(match=HOLDS + "*"):
            redis_client.delete(key)

    wipe()
    with app.connection_for_write() as conn:
        channel = conn.channel()
        channel.do_restore = False  # closing must not return what it took: as if killed
        yield channel
    wipe()


def row(request_id: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.timezone.utc)
    return {"request_id": request_id, "image_ref": f"/x/{request_id}.jpg", "batch_id": "b",
            "submitted_at": now}  # fmt: skip


def take(channel: Any, ids: list[str]) -> dict[str, str]:
    """Send a message per id and take each off the queue unacked: request id -> delivery tag."""
    from worker.app import app

    send(app, [row(i) for i in ids])
    tags = {}
    for _ in ids:
        message = channel.basic_get("inference", no_ack=False)
        tags[message.headers["id"]] = message.delivery_tag
    return tags
