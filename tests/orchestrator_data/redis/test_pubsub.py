"""Alerts over pub/sub on the real server, and subscribing against a dead server."""

from __future__ import annotations

import pytest

from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.errors import RedisUnavailable
from orchestrator_data.redis.pubsub import Alert, Severity, publish, publish_alert, subscribe_alerts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def test_alerts_reach_every_subscriber(client, uid):
    with subscribe_alerts(client) as first, subscribe_alerts(client) as second:
        receivers = publish_alert(client, "critical", f"backup failed {uid}", detail="pg_dump exited 1",
                                  source="backup_job")
        assert receivers >= 2
        for subscription in (first, second):
            alert = Alert.from_event(subscription.get(timeout=2))
            assert alert.severity is Severity.CRITICAL and alert.title == f"backup failed {uid}"
            assert alert.detail == "pg_dump exited 1" and alert.source == "backup_job" and alert.at
        assert first.get(timeout=0.1) is None


def test_publish_without_subscribers_is_not_an_error(client, uid):
    assert publish(client, f"nobody-listens-{uid}", {"x": 1}) == 0


def test_subscribing_to_a_dead_server_raises_a_clear_error(dead_url):
    with pytest.raises(RedisUnavailable) as caught:
        subscribe_alerts(create_client(dead_url, retries=0, socket_timeout=1))
    assert "DeadPortSecret42" not in str(caught.value)
