"""The lost-worker watchdog's counting (pure: a stand-in for Celery's broadcast ping and a clock)."""

from __future__ import annotations

from types import SimpleNamespace

from runtime.executors import MISSED_PINGS, LiveWorkers

PING_EVERY_S = 5.0


class Broker:
    def __init__(self, alive: set[str]):
        self.alive = alive
        self.pings = 0
        self.control = SimpleNamespace(ping=self.ping)

    def ping(self, timeout: float):
        self.pings += 1
        return [{name: {"ok": "pong"}} for name in sorted(self.alive)]


def test_a_worker_is_gone_after_missed_pings_in_a_row_and_the_others_stay():
    broker, now = Broker({"a@h", "b@h"}), [0.0]
    live = LiveWorkers(broker, PING_EVERY_S, clock=lambda: now[0])
    assert not live.gone("a@h") and not live.gone("b@h")
    broker.alive = {"a@h"}  # b dies
    for _ in range(MISSED_PINGS):
        now[0] += PING_EVERY_S
        # only a's step asks: b is still counted, having been asked about once
        assert not live.gone("a@h")
    assert live.gone("b@h") and not live.gone("a@h")


def test_one_ping_per_interval_whatever_the_number_of_steps():
    broker, now = Broker({"a@h"}), [0.0]
    live = LiveWorkers(broker, PING_EVERY_S, clock=lambda: now[0])
    for _ in range(50):
        live.gone("a@h")
    now[0] += PING_EVERY_S / 2
    live.gone("a@h")
    assert broker.pings == 1


def test_a_worker_answering_again_is_forgiven():
    broker, now = Broker(set()), [0.0]
    live = LiveWorkers(broker, PING_EVERY_S, clock=lambda: now[0])
    for _ in range(MISSED_PINGS - 1):
        live.gone("a@h")
        now[0] += PING_EVERY_S
    broker.alive = {"a@h"}
    assert not live.gone("a@h")
    broker.alive = set()
    now[0] += PING_EVERY_S
    assert not live.gone("a@h")  # one miss again, not MISSED_PINGS
