"""Work queues `queue:{type}`: Redis Streams read by the consumer group `workers`, at-least-once.

- enqueue: XADD. The stream is never trimmed by length (that would drop undelivered work); an entry
  is deleted when it is acknowledged, so the stream holds exactly the backlog plus the in-flight.
- consume: XREADGROUP `>`: each new message goes to exactly one consumer and enters the group's
  pending list (PEL) until acknowledged.
- ack: XACK then XDEL in one MULTI (XDEL alone does not clear the pending list).
- reclaim: XAUTOCLAIM takes over messages idle for longer than the visibility timeout — held by a
  consumer that died or hangs. A message whose delivery count would exceed `max_deliveries` is moved
  to `dead_letter:{type}` instead, with the reason, in the same script.

Delivery is at least once: a consumer can die after its work is done and before its ack, a retried
XADD can add a message twice. **Handlers must be idempotent** — key their effects on a business id
(the execution id, a notification id in the payload) or on the message id, which stays the same
across redeliveries.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis

from orchestrator_data.redis._codec import pairs, text, text_dict
from orchestrator_data.redis.errors import describe, translated
from orchestrator_data.redis.keyspace import CONSUMER_GROUP, DEAD_LETTER, QUEUE

log = logging.getLogger("orchestrator_data.redis.queues")

DEFAULT_MAX_DELIVERIES = 5
DEFAULT_VISIBILITY_TIMEOUT = 60.0

# KEYS: queue, dead letter. ARGV: group, consumer, min idle ms, count, max deliveries, start id.
# Returns {next start id, {{id, fields, deliveries}...}, {dead-lettered ids}}.
RECLAIM_LUA = """
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[6], 'COUNT', ARGV[4])
local out, dead = {}, {}
local max_deliveries = tonumber(ARGV[5])
for _, entry in ipairs(claimed[2]) do
  local id, fields = entry[1], entry[2]
  local info = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  -- XAUTOCLAIM counted this claim as a delivery: the message has been handed out count - 1 times
  local deliveries = info[1] and tonumber(info[1][4]) or 1
  if deliveries > max_deliveries then
    local record = {'queue', KEYS[1], 'original_id', id, 'deliveries', tostring(deliveries - 1),
                    'reason', 'delivered ' .. (deliveries - 1) .. ' times without acknowledgement'}
    if type(fields) == 'table' then for i = 1, #fields do record[#record + 1] = fields[i] end end
    redis.call('XADD', KEYS[2], '*', unpack(record))
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    dead[#dead + 1] = id
  else
    out[#out + 1] = {id, fields, deliveries}
  end
end
return {claimed[1], out, dead}
"""

SCRIPTS = {"queues.reclaim": RECLAIM_LUA}


def default_consumer_name() -> str:
    """host-pid-random: unique per process, and it says where a stuck message is held."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _enqueued_at(message_id: str) -> datetime:
    return datetime.fromtimestamp(int(message_id.split("-")[0]) / 1000, tz=timezone.utc)


@dataclass(frozen=True)
class Message:
    id: str           # the stream id: the same on every redelivery, usable as an idempotency key
    payload: Any
    deliveries: int   # 1 on the first delivery
    queue: str

    @property
    def enqueued_at(self) -> datetime:
        return _enqueued_at(self.id)


@dataclass(frozen=True)
class DeadLetter:
    id: str
    original_id: str
    deliveries: int
    reason: str
    payload: Any


@dataclass(frozen=True)
class PendingMessage:
    id: str
    consumer: str
    idle: float       # seconds since it was last delivered
    deliveries: int


@dataclass(frozen=True)
class QueueDepth:
    length: int        # entries in the stream: not yet delivered + delivered and not yet acknowledged
    pending: int       # delivered, not yet acknowledged
    consumers: int
    dead_letters: int
    group_exists: bool

    @property
    def backlog(self) -> int:
        """Not yet delivered to any consumer."""
        return max(0, self.length - self.pending)


@dataclass(frozen=True)
class WorkResult:
    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0


class WorkQueue:
    """One queue type. `max_deliveries`: deliveries before a message is dead-lettered;
    `visibility_timeout`: seconds a delivered message may stay unacknowledged before another consumer
    may reclaim it (longer than the slowest handler)."""

    def __init__(self, client: redis.Redis, type_: str, group: str = CONSUMER_GROUP,
                 max_deliveries: int = DEFAULT_MAX_DELIVERIES,
                 visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
                 dumps: Callable[[Any], str] = lambda v: json.dumps(v, separators=(",", ":")),
                 loads: Callable[[str | bytes], Any] = json.loads):
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        self.client = client
        self.type = type_
        self.key = QUEUE.key(type=type_)
        self.dead_key = DEAD_LETTER.key(type=type_)
        self.group = group
        self.max_deliveries = max_deliveries
        self.visibility_ms = int(visibility_timeout * 1000)
        self.dumps, self.loads = dumps, loads
        self._reclaim = client.register_script(RECLAIM_LUA)

    # -- setup ---------------------------------------------------------------------------------
    def ensure_group(self) -> bool:
        """Create the consumer group (and the stream); True when created, False when it existed.
        From id 0, so messages enqueued before the group existed are delivered too."""
        with translated(f"create consumer group of {self.key}"):
            try:
                self.client.xgroup_create(self.key, self.group, id="0", mkstream=True)
                return True
            except redis.ResponseError as exc:
                if str(exc).startswith("BUSYGROUP"):
                    return False
                raise

    # -- producers -----------------------------------------------------------------------------
    def enqueue(self, payload: Any) -> str:
        """Add a message; returns its id. Raises RedisUnavailable when Redis is down."""
        with translated(f"enqueue on {self.key}"):
            return text(self.client.xadd(self.key, {"payload": self.dumps(payload)}))

    def enqueue_many(self, payloads: Iterable[Any]) -> list[str]:
        """Add messages in one round trip (one MULTI: all or none)."""
        with translated(f"enqueue on {self.key}"):
            pipe = self.client.pipeline(transaction=True)
            for payload in payloads:
                pipe.xadd(self.key, {"payload": self.dumps(payload)})
            return [text(i) for i in pipe.execute()]

    # -- consumers -----------------------------------------------------------------------------
    def consume(self, consumer: str, count: int = 10, block: float | None = 1.0) -> list[Message]:
        """New messages for `consumer`, waiting up to `block` seconds for the first (None: do not wait)."""
        block_ms = None if block is None else max(1, int(block * 1000))
        with translated(f"consume from {self.key}"):
            try:
                reply = self._read(consumer, count, block_ms)
            except redis.ResponseError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
                self.ensure_group()  # the stream or group is gone (a flushed or fresh server)
                reply = self._read(consumer, count, block_ms)
        messages = []
        for _stream, entries in reply or []:
            for message_id, fields in entries:
                messages.append(self._message(text(message_id), text_dict(fields), 1))
        return messages

    def _read(self, consumer: str, count: int, block_ms: int | None):
        return self.client.xreadgroup(self.group, consumer, {self.key: ">"}, count=count, block=block_ms)

    def ack(self, *message_ids: str) -> int:
        """Acknowledge and delete; returns how many were still pending."""
        if not message_ids:
            return 0
        with translated(f"ack on {self.key}"):
            pipe = self.client.pipeline(transaction=True)
            pipe.xack(self.key, self.group, *message_ids)
            pipe.xdel(self.key, *message_ids)
            acked, _ = pipe.execute()
        return int(acked)

    def reclaim(self, consumer: str, min_idle: float | None = None,
                count: int = 100) -> tuple[list[Message], list[str]]:
        """Take over up to `count` messages idle for `min_idle` seconds (default: the visibility
        timeout). Returns the messages now held by `consumer` and the ids moved to the dead letters."""
        min_idle_ms = self.visibility_ms if min_idle is None else int(min_idle * 1000)
        messages: list[Message] = []
        dead: list[str] = []
        start = "0-0"
        with translated(f"reclaim on {self.key}"):
            while len(messages) < count:
                try:
                    start, claimed, dead_ids = self._reclaim(
                        keys=[self.key, self.dead_key],
                        args=[self.group, consumer, min_idle_ms, count - len(messages), self.max_deliveries, start])
                except redis.ResponseError as exc:
                    if "NOGROUP" in str(exc):
                        return [], []
                    raise
                dead.extend(text(i) for i in dead_ids)
                for message_id, fields, deliveries in claimed:
                    messages.append(self._message(text(message_id), pairs(fields), int(deliveries)))
                start = text(start)
                if start == "0-0":
                    break
        if dead:
            log.warning("%s: moved %d message(s) to %s after %d deliveries", self.key, len(dead), self.dead_key,
                        self.max_deliveries)
        return messages, dead

    def dead_letter(self, message: Message, reason: str) -> str:
        """Move a message to the dead letters now (a poison message its handler can never process)."""
        with translated(f"dead-letter on {self.key}"):
            pipe = self.client.pipeline(transaction=True)
            pipe.xadd(self.dead_key, {"queue": self.key, "original_id": message.id,
                                      "deliveries": str(message.deliveries), "reason": reason,
                                      "payload": self.dumps(message.payload)})
            pipe.xack(self.key, self.group, message.id)
            pipe.xdel(self.key, message.id)
            dead_id, _, _ = pipe.execute()
        return text(dead_id)

    def work(self, handler: Callable[[Message], Any], consumer: str, count: int = 10,
             block: float | None = 1.0) -> WorkResult:
        """One round of a worker: reclaim what others left idle, then read new messages; run
        `handler` on each and acknowledge it when it returns. A handler that raises leaves its
        message pending: it is redelivered after the visibility timeout, and dead-lettered after
        `max_deliveries`. The handler must be idempotent."""
        reclaimed, dead = self.reclaim(consumer, count=count)
        batch = reclaimed + self.consume(consumer, count=max(1, count - len(reclaimed)),
                                         block=None if reclaimed else block)
        processed = failed = 0
        for message in batch:
            try:
                handler(message)
            except Exception as exc:  # noqa: BLE001 - a failing handler must not stop the worker
                failed += 1
                log.warning("%s: handler failed on %s (delivery %d): %s", self.key, message.id,
                            message.deliveries, describe(exc))
                continue
            self.ack(message.id)
            processed += 1
        return WorkResult(processed=processed, failed=failed, dead_lettered=len(dead))

    # -- inspection ----------------------------------------------------------------------------
    def pending(self, consumer: str | None = None, count: int = 100) -> list[PendingMessage]:
        with translated(f"pending of {self.key}"):
            try:
                rows = self.client.xpending_range(self.key, self.group, min="-", max="+", count=count,
                                                  consumername=consumer)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    return []
                raise
        return [PendingMessage(id=text(r["message_id"]), consumer=text(r["consumer"]),
                               idle=r["time_since_delivered"] / 1000, deliveries=int(r["times_delivered"]))
                for r in rows]

    def depth(self) -> QueueDepth:
        return queue_depths(self.client, [self.type], self.group)[self.type]

    def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        with translated(f"read dead letters of {self.key}"):
            rows = self.client.xrange(self.dead_key, count=count)
        letters = []
        for dead_id, raw in rows:
            fields = text_dict(raw)
            letters.append(DeadLetter(id=text(dead_id), original_id=fields.get("original_id", ""),
                                      deliveries=int(fields.get("deliveries") or 0), reason=fields.get("reason", ""),
                                      payload=self.loads(fields["payload"]) if "payload" in fields else None))
        return letters

    def replay_dead_letters(self, count: int = 100) -> int:
        """Put dead letters back on the queue (after the handler was fixed), with fresh delivery counts."""
        letters = self.dead_letters(count)
        if not letters:
            return 0
        with translated(f"replay dead letters of {self.key}"):
            pipe = self.client.pipeline(transaction=True)
            for letter in letters:
                pipe.xadd(self.key, {"payload": self.dumps(letter.payload)})
                pipe.xdel(self.dead_key, letter.id)
            pipe.execute()
        return len(letters)

    def _message(self, message_id: str, fields: dict[str, str], deliveries: int) -> Message:
        raw = fields.get("payload")
        return Message(id=message_id, payload=self.loads(raw) if raw is not None else None,
                       deliveries=deliveries, queue=self.type)


def queue_depths(client: redis.Redis, types: Iterable[str], group: str = CONSUMER_GROUP) -> dict[str, QueueDepth]:
    """Length, pending, consumers and dead letters of each queue, in one round trip."""
    types = list(types)
    with translated("queue depths"):
        pipe = client.pipeline(transaction=False)
        for type_ in types:
            pipe.xlen(QUEUE.key(type=type_))
            pipe.xlen(DEAD_LETTER.key(type=type_))
            pipe.xinfo_groups(QUEUE.key(type=type_))
        # per-command errors come back as values (XINFO GROUPS on a missing stream); a lost
        # connection still raises
        results = pipe.execute(raise_on_error=False)
    depths = {}
    for i, type_ in enumerate(types):
        length, dead, groups = results[3 * i: 3 * i + 3]
        # XINFO GROUPS on a missing stream is an error: no stream, no group
        info = next((g for g in (groups if isinstance(groups, list) else [])
                     if text(g.get("name")) == group), None)
        depths[type_] = QueueDepth(
            length=length if isinstance(length, int) else 0,
            pending=int(info["pending"]) if info else 0,
            consumers=int(info["consumers"]) if info else 0,
            dead_letters=dead if isinstance(dead, int) else 0,
            group_exists=info is not None,
        )
    return depths
