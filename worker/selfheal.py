"""Unacknowledged messages of dead workers back on the queue, and lost messages re-sent.

kombu's Redis transport emulates acks: on delivery a message is copied into the hash
`unacked` (by delivery tag) and its delivery time into the sorted set `unacked_index`; an
ack deletes both. A worker killed with SIGKILL leaves its messages there, and kombu itself
returns them only after the visibility timeout (an hour by default), whoever holds them.

Instead, every worker publishes the delivery tags it holds (`crackq:holds:<node>:<pid>`, a
set that expires after CRACKQ_HOLDS_TTL_S), and one worker at a time (a Redis lock) sweeps:
  - an unacked message no live worker holds, delivered more than CRACKQ_HOLDS_TTL_S ago,
    goes back to its queue (kombu's own `restore_by_tag`, one WATCH transaction, so an ack
    racing with it wins and nothing is restored twice);
  - a row still `queued` after CRACKQ_REQUEUE_LOST_AFTER_S whose message is in neither the
    queue nor the unacked hash (a worker killed between kombu's BRPOP and its HSET) has its
    message re-sent.
Both must be seen by two sweeps in a row, so a worker that has just reconnected (or a
message moving between the queue and the hash) gets a sweep's time to show up. A live worker
may hold a message as long as it likes: its heartbeat keeps it off the sweep.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db import results
from worker.app import CLASSIFY_TASK, INFERENCE_QUEUE
from worker.enqueue import send

log = logging.getLogger(__name__)

HOLDS = "crackq:holds:"  # + worker id: the delivery tags that worker holds unacked
ALIVE = "-"  # a member every holds set has, so an idle live worker's key exists too
LEADER = "crackq:sweeper"
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's Channel defaults
# renew the sweeper lock only if it is still ours
RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501


def held_tags(qos: Any) -> list[str] | None:
    """The delivery tags a consumer's kombu QoS holds unacked, read from another thread.

    `_delivered` is only changed by the consuming thread, acks only mark tags `_dirty`;
    a copy taken mid-change raises RuntimeError, so it is retried, and None means give up.
    """
    for _ in range(10):
        try:
            dirty = set(qos._dirty)
            return [str(tag) for tag in list(qos._delivered) if tag not in dirty]
        except RuntimeError:
            time.sleep(0.001)
    return None


def publish_holds(client: Any, worker_id: str, tags: Iterable[str], ttl_s: float) -> None:
    """Replace this worker's holds set, alive for `ttl_s` unless published again."""
    key = HOLDS + worker_id
    pipe = client.pipeline(transaction=True)
    pipe.delete(key).sadd(key, ALIVE, *tags).pexpire(key, int(ttl_s * 1000))
    pipe.execute()


def live_holds(client: Any) -> set[str]:
    """Every delivery tag some live worker says it holds."""
    held: set[str] = set()
    for key in client.scan_iter(match=HOLDS + "*", count=500):
        held.update(m.decode() if isinstance(m, bytes) else m for m in client.smembers(key))
    held.discard(ALIVE)
    return held


def lead(client: Any, me: str, ttl_s: float) -> bool:
    """Take or keep the sweeper lock; True while this worker is the one sweeper."""
    ms = int(ttl_s * 1000)
    return bool(client.set(LEADER, me, nx=True, px=ms) or client.eval(RENEW, 1, LEADER, me, ms))


class Sweeper:
    """One worker's sweeps; it remembers what the last sweep suspected."""

    def __init__(
        self, app: Celery, sessions: sessionmaker[Session], holds_ttl_s: float, lost_after_s: float
    ) -> None:
        self.app, self.sessions = app, sessions
        self.holds_ttl_s, self.lost_after_s = holds_ttl_s, lost_after_s
        self._orphans: set[str] = set()
        self._lost: set[str] = set()

    def sweep(self) -> tuple[int, int]:
        """One sweep: (messages restored, messages re-sent)."""
        with self.app.connection_for_write() as conn:
            channel = conn.default_channel
            restored = self.restore_orphans(channel)
            resent = self.resend_lost(channel)
        return restored, resent

    def restore_orphans(self, channel: Any) -> int:
        with channel.conn_or_acquire() as client:
            before = time.time() - self.holds_ttl_s
            old = {_text(t) for t in client.zrangebyscore(UNACKED_INDEX, 0, before)}
            orphans = old - live_holds(client) if old else set()
            confirmed, self._orphans = orphans & self._orphans, orphans - self._orphans
            for tag in confirmed:
                channel.qos.restore_by_tag(tag, client)
        if confirmed:
            log.warning(
                "self-heal: %d unacked messages of dead workers back on the queue", len(confirmed)
            )
        return len(confirmed)

    def resend_lost(self, channel: Any) -> int:
        with self.sessions() as session:
            stale = results.stale_queued(session, self.lost_after_s, 10_000)
        if not stale:
            self._lost = set()
            return 0
        lost = {row["request_id"] for row in stale} - ids_in_broker(channel)
        confirmed, self._lost = lost & self._lost, lost - self._lost
        rows = [row for row in stale if row["request_id"] in confirmed]
        send(self.app, rows)
        if rows:
            log.warning(
                "self-heal: re-sent %d messages of rows queued over %g s whose message was lost",
                len(rows),
                self.lost_after_s,
            )
        return len(rows)


def ids_in_broker(channel: Any) -> set[str]:
    """Task ids and request ids of every inference message queued or held unacked.

    Read in one MULTI, so a message moving between the queue and the hash is seen once.
    """
    keys = [channel._q_for_pri(INFERENCE_QUEUE, p) for p in channel.priority_steps]
    with channel.conn_or_acquire() as client:
        pipe = client.pipeline(transaction=True)
        for key in dict.fromkeys(keys):
            pipe.lrange(key, 0, -1)
        pipe.hvals(UNACKED)
        *queued, unacked = pipe.execute()
    payloads = [json.loads(m) for q in queued for m in q]
    payloads += [json.loads(m)[0] for m in unacked]
    return {i for p in payloads for i in _ids(p)}


def _ids(payload: dict[str, Any]) -> set[str]:
    headers = payload.get("headers") or {}
    ids = {str(headers["id"])} if headers.get("id") else set()
    if headers.get("task") == CLASSIFY_TASK:
        try:  # a producer may set a request id other than the task id
            body = payload["body"]
            if payload.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            kwargs = json.loads(body)[1]
            ids.add(str(kwargs["request_id"]))
        except (KeyError, IndexError, TypeError, ValueError):
            pass
    return ids


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
