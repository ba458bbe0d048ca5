"""Real-time notifications over pub/sub: execution events `execution:events:{executionId}` and
operational alerts `alerts`.

Pub/sub is fire-and-forget: a subscriber that is not connected when a message is published never
gets it (also while Redis restarts; redis-py resubscribes on reconnect). State that must not be
missed lives in a key — the execution hash — and the channel only says "it changed": `watch_execution`
subscribes first, then reads the hash, then applies only events with a higher `seq`, so nothing
between the read and the subscription is lost.
"""

from __future__ import annotations

import collections
import enum
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import redis

from orchestrator_data.redis._codec import text
from orchestrator_data.redis.errors import RedisUnavailable, translated
from orchestrator_data.redis.execution_state import ExecutionState, ExecutionStateStore
from orchestrator_data.redis.keyspace import ALERTS, EXECUTION_EVENTS

_DATA_TYPES = {"message", "pmessage"}
_CONFIRM_TYPES = {"subscribe", "psubscribe"}


@dataclass(frozen=True)
class Event:
    channel: str
    data: Any           # the payload decoded from JSON, or its text when it is not JSON
    pattern: str | None = None


class Subscription:
    """Channels and patterns on one dedicated connection. Use as a context manager; `get(timeout)`
    returns the next event or None. Subscribing waits for the server's confirmation, so a message
    published after the constructor returns is received."""

    def __init__(self, client: redis.Redis, channels: tuple[str, ...] = (), patterns: tuple[str, ...] = (),
                 confirm_timeout: float = 5.0):
        self._pubsub = client.pubsub()
        self._early: collections.deque = collections.deque()
        with translated("subscribe"):
            if channels:
                self._pubsub.subscribe(*channels)
            if patterns:
                self._pubsub.psubscribe(*patterns)
            self._confirm(len(channels) + len(patterns), confirm_timeout)

    def _confirm(self, expected: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while expected:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise RedisUnavailable(f"subscribe: no confirmation from Redis within {timeout:g} s")
            message = self._pubsub.get_message(timeout=left)
            if message is None:
                continue
            if message["type"] in _CONFIRM_TYPES:
                expected -= 1
            elif message["type"] in _DATA_TYPES:
                self._early.append(message)

    def get(self, timeout: float = 1.0) -> Event | None:
        if self._early:
            return _event(self._early.popleft())
        deadline = time.monotonic() + timeout
        while True:
            with translated("receive"):
                message = self._pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is not None and message["type"] in _DATA_TYPES:
                return _event(message)
            if time.monotonic() >= deadline:
                return None

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.get(timeout=1.0)
            if event is not None:
                yield event

    def close(self) -> None:
        self._pubsub.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _event(message: dict) -> Event:
    raw = text(message["data"])
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        data = raw
    return Event(channel=text(message["channel"]), data=data, pattern=text(message.get("pattern")))


def publish(client: redis.Redis, channel: str, payload: Any) -> int:
    """Publish JSON; returns how many subscribers got it. Raises RedisUnavailable when down."""
    with translated(f"publish on {channel}"):
        return int(client.publish(channel, json.dumps(payload, separators=(",", ":"), default=str)))


# -- executions -------------------------------------------------------------------------------
def subscribe_execution(client: redis.Redis, execution_id: str | int) -> Subscription:
    return Subscription(client, channels=(EXECUTION_EVENTS.channel(execution_id=execution_id),))


def subscribe_executions(client: redis.Redis) -> Subscription:
    """Every execution's events (PSUBSCRIBE execution:events:*)."""
    return Subscription(client, patterns=(EXECUTION_EVENTS.glob,))


def watch_execution(client: redis.Redis, execution_id: str | int, timeout: float = 30.0) -> Iterator[ExecutionState]:
    """The execution's current state, then each later state, until it finishes or `timeout` seconds
    pass without an event. Nothing between the read and the subscription is missed: see the module."""
    store = ExecutionStateStore(client)
    with subscribe_execution(client, execution_id) as subscription:
        snapshot = store.get(execution_id)
        last_seq = 0
        if snapshot is not None:
            yield snapshot
            last_seq = snapshot.seq
            if snapshot.finished:
                return
        while True:
            event = subscription.get(timeout=timeout)
            if event is None:
                return
            state = ExecutionState.from_event(event.data)
            if state.seq <= last_seq:
                continue  # already part of the snapshot
            last_seq = state.seq
            yield state
            if state.finished:
                return


# -- alerts -----------------------------------------------------------------------------------
class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    severity: Severity
    title: str
    detail: str = ""
    source: str = "orchestrator-data"
    at: str = ""

    @classmethod
    def from_event(cls, event: Event) -> Alert:
        data = event.data if isinstance(event.data, dict) else {"title": str(event.data)}
        return cls(severity=Severity(data.get("severity", "info")), title=data.get("title", ""),
                   detail=data.get("detail", ""), source=data.get("source", ""), at=data.get("at", ""))


def publish_alert(client: redis.Redis, severity: Severity | str, title: str, detail: str = "",
                  source: str = "orchestrator-data", channel: str | None = None) -> int:
    """Publish an alert on `channel` (default `alerts`); returns how many subscribers got it. The text
    goes out as given: keep secrets out of it (orchestrator_data.redaction.redact driver messages first)."""
    alert = Alert(Severity(severity), title, detail, source, datetime.now(timezone.utc).isoformat())
    return publish(client, channel or ALERTS.channel(), asdict(alert) | {"severity": alert.severity.value})


def subscribe_alerts(client: redis.Redis, channel: str | None = None) -> Subscription:
    return Subscription(client, channels=(channel or ALERTS.channel(),))
