"""kombu's Redis transport, taking the messages already waiting in one round trip, not one each.

kombu's Redis channel takes one message per event-loop turn: a BRPOP, then, for a message
that needs an ack, a second round trip (MULTI / ZADD / HSET / EXEC) recording it in the
unacknowledged index and hash. A worker that batches 32 photos paid that 64 times a batch.

Here, once kombu's BRPOP has delivered its message, and if that BRPOP was answered at
once (its message was waiting: a backlog) or the last script call took any, one Lua
script pops up to the prefetch window's room more from the same queues (RPOP with a
count, Redis >= 6.2) and records each in the unacknowledged index and hash inside the
same atomic script, in the
exact form kombu's `QoS.append` writes (`[payload, exchange, routing_key]`), so restore,
ack and the visibility timeout treat them as kombu's own. The window between leaving the
list and being recorded, a round trip per message in kombu, is gone for these messages:
the script does both or neither. Each message is then delivered as kombu would, and
`QoS.append` skips the Redis write already done. A message that came alone to a BRPOP
that was blocked waiting (trickle traffic) costs no extra round trip.

Off (kombu's behaviour) with CRACKQ_BATCH_RECEIVE=false, on a key prefix
(`global_keyprefix`), and on a Redis without RPOP's count (the first refusal turns it off).
"""

from __future__ import annotations

import logging
from time import monotonic, time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

MAX_MORE = 64  # messages per script call: bounds the time one event-loop turn takes
ANSWERED_AT_ONCE_S = 0.002  # a BRPOP answered this soon after it was sent found a message waiting

# KEYS: unacked index (zset), unacked hash, then the queue lists in the order BRPOP polls
# them. ARGV: how many at most, the index score (now). Returns key, item, recorded(0/1)
# triples. An item that is not a kombu envelope is returned unrecorded, as BRPOP would.
RECEIVE = """
local want = tonumber(ARGV[1])
local out = {}
for k = 3, #KEYS do
  if want <= 0 then break end
  local items = redis.call('RPOP', KEYS[k], want)
  if items then
    for _, item in ipairs(items) do
      local ok, msg = pcall(cjson.decode, item)
      local props = ok and type(msg) == 'table' and msg['properties']
      local info = type(props) == 'table' and props['delivery_info']
      local tag = type(props) == 'table' and props['delivery_tag']
      local recorded = 0
      if type(tag) == 'string' and type(info) == 'table'
          and type(info['exchange']) == 'string' and type(info['routing_key']) == 'string' then
        redis.call('ZADD', KEYS[1], ARGV[2], tag)
        redis.call('HSET', KEYS[2], tag, '[' .. item .. ', ' .. cjson.encode(info['exchange'])
                   .. ', ' .. cjson.encode(info['routing_key']) .. ']')
        recorded = 1
      end
      out[#out + 1] = KEYS[k]
      out[#out + 1] = item
      out[#out + 1] = recorded
    end
    want = want - #items
  end
end
return out
"""


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS; a message the receive script recorded is not recorded twice."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: set[str] = set()  # tags in the unacked hash, not yet delivered

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self.recorded:
            self.recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)  # the in-memory half only
        else:
            super().append(message, delivery_tag)


class Channel(kombu_redis.Channel):
    """kombu's Redis channel; after each BRPOP, the waiting messages in one script call."""

    QoS = QoS
    batch_receive = True  # from transport_options, as kombu's own channel options

    from_transport_options = (*kombu_redis.Channel.from_transport_options, "batch_receive")  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receive_script = self.client.register_script(RECEIVE)
        self._took_more = False

    def _brpop_read(self, **options: Any) -> bool:
        sent_at = getattr(self, "_brpop_sent_at", None)  # set by kombu's _brpop_start
        at_once = sent_at is None or monotonic() - sent_at < ANSWERED_AT_ONCE_S
        delivered: bool = super()._brpop_read(**options)
        # A BRPOP answered at once found its message waiting, and others may wait behind
        # it; one that blocked took a message that came alone, as trickle traffic does,
        # which then costs no extra round trip. A backlog keeps the script going.
        if delivered and self._batching() and (self._took_more or at_once):
            self._took_more = self._receive_waiting() > 0
        return delivered

    def _batching(self) -> bool:
        return bool(self.batch_receive) and not self.global_keyprefix

    def _receive_waiting(self) -> int:
        """Deliver the messages waiting behind the one BRPOP took; how many were taken."""
        room = self.qos.can_consume_max_estimate()
        want = MAX_MORE if room is None else min(room, MAX_MORE)
        queues = self._queue_cycle.consume(len(self.active_queues))
        if want <= 0 or not queues:
            return 0
        keys = [self._q_for_pri(q, pri) for pri in self.priority_steps for q in queues]
        index, unacked = self.qos.unacked_index_key, self.qos.unacked_key
        try:
            with self.conn_or_acquire() as client:
                got = self._receive_script(
                    keys=[index, unacked, *keys], args=[want, time()], client=client
                )
        except ResponseError as exc:  # RPOP with a count needs Redis 6.2
            log.warning("batch receive off for this channel: Redis refused it (%s)", exc)
            self.batch_receive = False
            return 0
        qos: QoS = self.qos
        for i in range(0, len(got), 3):
            key, item, recorded = got[i : i + 3]
            try:
                payload = loads(bytes_to_str(item))
            except ValueError:
                log.error("dropped a queue entry that is not JSON: %r", item[:200])
                continue
            dest = bytes_to_str(key).rsplit(self.sep, 1)[0]
            if recorded:
                qos.recorded.add(payload["properties"]["delivery_tag"])
                self.connection._deliver(payload, dest)
                continue
            try:  # not a kombu envelope: kombu's own BRPOP path would raise here
                self.connection._deliver(payload, dest)
            except Exception:
                log.exception("dropped a queue entry that is not a kombu message: %r", item[:200])
        return len(got) // 3


class Transport(kombu_redis.Transport):
    """The Redis transport with `Channel` above; worker.app makes it redis://'s transport."""

    Channel = Channel
