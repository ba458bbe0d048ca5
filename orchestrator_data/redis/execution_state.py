"""Live execution state `execution:status:{executionId}`: every update writes the hash and publishes
it on `execution:events:{executionId}` in one script — one round trip, and no subscriber ever sees
an event the hash does not hold.

Each update increments `seq`, so a subscriber that reads the hash after subscribing (see
`pubsub.watch_execution`) knows which events it has already seen. Once the status is terminal the key
gets the short finished TTL, and later non-terminal updates are ignored: a late "running 80 %" from a
slow worker cannot resurrect a finished execution. While running, each update renews a long TTL, so
an execution whose worker died does not stay in Redis forever.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import redis

from orchestrator_data.redis._codec import LUA_PRELUDE, from_ms, text
from orchestrator_data.redis.errors import translated
from orchestrator_data.redis.keyspace import EXECUTION_EVENTS, EXECUTION_STATUS

# The same statuses as the executions table in PostgreSQL.
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
DEFAULT_RUNNING_TTL = 24 * 3600
DEFAULT_FINISHED_TTL = 3600

# KEYS: state. ARGV: execution id, channel, running ttl ms, finished ttl ms, terminal statuses
# (comma-separated, with leading and trailing commas), then field/value pairs.
UPDATE_LUA = LUA_PRELUDE + """
local terminal = ARGV[5]
local current = redis.call('HGET', KEYS[1], 'status')
local status = nil
for i = 6, #ARGV, 2 do if ARGV[i] == 'status' then status = ARGV[i + 1] end end
local function is_terminal(s) return s and string.find(terminal, ',' .. s .. ',', 1, true) ~= nil end
if is_terminal(current) then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'seq') or 0), 0}
end
local now = int(now_ms())
local fields = {'updated_at', now}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('HSETNX', KEYS[1], 'created_at', now)
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if is_terminal(status) then
  redis.call('HSET', KEYS[1], 'finished_at', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
local state = {execution_id = ARGV[1]}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do state[flat[i]] = flat[i + 1] end
local receivers = redis.call('PUBLISH', ARGV[2], cjson.encode(state))
return {1, seq, receivers}
"""

SCRIPTS = {"execution_state.update": UPDATE_LUA}


@dataclass(frozen=True)
class ExecutionState:
    execution_id: str
    seq: int
    status: str | None
    progress: float | None
    step: str | None
    message: str | None
    created_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None
    data: dict

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_fields(cls, execution_id: str, values: dict[str, str]) -> ExecutionState:
        progress = values.get("progress")
        return cls(execution_id=execution_id, seq=int(values.get("seq") or 0), status=values.get("status"),
                   progress=float(progress) if progress not in (None, "") else None,
                   step=values.get("step"), message=values.get("message"),
                   created_at=from_ms(values.get("created_at")), updated_at=from_ms(values.get("updated_at")),
                   finished_at=from_ms(values.get("finished_at")), data=json.loads(values.get("data") or "{}"))

    @classmethod
    def from_event(cls, payload: str | bytes | dict) -> ExecutionState:
        """The state an `execution:events:*` message carries (its JSON, or the decoded dict)."""
        values = dict(payload) if isinstance(payload, dict) else json.loads(payload)
        return cls.from_fields(str(values.pop("execution_id")), {k: str(v) for k, v in values.items()})


@dataclass(frozen=True)
class UpdateResult:
    applied: bool    # False: the execution had already finished, nothing was written or published
    seq: int
    receivers: int   # subscribers the event reached (pub/sub is fire-and-forget)


class ExecutionStateStore:
    def __init__(self, client: redis.Redis, running_ttl: float = DEFAULT_RUNNING_TTL,
                 finished_ttl: float = DEFAULT_FINISHED_TTL):
        self.client = client
        self.running_ms = int(running_ttl * 1000)
        self.finished_ms = int(finished_ttl * 1000)
        self._update = client.register_script(UPDATE_LUA)

    def update(self, execution_id: str | int, status: str | None = None, progress: float | None = None,
               step: str | None = None, message: str | None = None, data: dict | None = None) -> UpdateResult:
        """Record progress and publish it, atomically. Raises RedisUnavailable when Redis is down
        (the execution itself goes on; its state in PostgreSQL is the record)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown execution status {status!r}; expected one of {', '.join(STATUSES)}")
        if progress is not None and not 0 <= progress <= 100:
            raise ValueError("progress is a percentage between 0 and 100")
        fields = {"status": status, "progress": None if progress is None else f"{progress:g}", "step": step,
                  "message": message, "data": None if data is None else json.dumps(data)}
        flat = [item for name, value in fields.items() if value is not None for item in (name, value)]
        execution_id = str(execution_id)
        with translated("execution state update"):
            applied, seq, receivers = self._update(
                keys=[EXECUTION_STATUS.key(execution_id=execution_id)],
                args=[execution_id, EXECUTION_EVENTS.channel(execution_id=execution_id), self.running_ms,
                      self.finished_ms, "," + ",".join(sorted(TERMINAL)) + ",", *flat])
        return UpdateResult(applied=applied == 1, seq=int(seq), receivers=int(receivers))

    def get(self, execution_id: str | int) -> ExecutionState | None:
        with translated("execution state read"):
            values = self.client.hgetall(EXECUTION_STATUS.key(execution_id=execution_id))
        if not values:
            return None
        return ExecutionState.from_fields(str(execution_id), {text(k): text(v) for k, v in values.items()})

    def ttl(self, execution_id: str | int) -> float | None:
        with translated("execution state TTL"):
            ms = self.client.pttl(EXECUTION_STATUS.key(execution_id=execution_id))
        return ms / 1000 if ms >= 0 else None

    def delete(self, execution_id: str | int) -> bool:
        with translated("execution state delete"):
            return bool(self.client.delete(EXECUTION_STATUS.key(execution_id=execution_id)))

