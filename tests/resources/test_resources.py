"""Each resource against its real server: health, pool figures, reconnection, failures."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator_data.redaction import redact
from orchestrator_data.stack.common import free_port
from resources import ElasticsearchResource, PostgresResource, RedisResource, build_resources

pytestmark = pytest.mark.integration


def test_postgres_resource_health(stack):
    resource = PostgresResource()
    health = resource.health()
    assert health.ok, health.error
    assert int(health.version.split(".")[0]) >= 16
    assert health.latency_ms > 0
    assert health.detail["pool_size"] == 5 and health.detail["database"] == "orchestrator"
    with resource.connect() as conn:
        assert conn.execute(sa.text("SELECT current_setting('application_name')")).scalar_one() == \
            "orchestrator-data-dagster"


def test_postgres_resource_survives_a_killed_connection(stack):
    resource = PostgresResource(pool_size=1, max_overflow=0)
    with resource.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    # the pooled connection dies server-side; pre-ping and the retry hand out a fresh one
    with PostgresResource().connect() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.commit()
    with resource.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != pid


def test_postgres_resource_reports_an_unreachable_server_without_the_password(stack):
    url = f"postgresql://app:NotThisPassword1@127.0.0.1:{free_port()}/orchestrator"
    health = PostgresResource(database_url=url).health()
    assert not health.ok
    assert "OperationalError" in health.error
    assert "NotThisPassword1" not in health.error


def test_redis_resource_health(stack):
    resource = RedisResource()
    health = resource.health()
    assert health.ok, health.error
    assert int(health.version.split(".")[0]) >= 7
    assert health.detail["maxmemory_policy"] == "noeviction"
    assert health.detail["pool_max_connections"] == 20
    assert health.detail["pool_created"] >= 1 and health.detail["pool_in_use"] == 0
    resource.client.set("orchestrator-data:test", "1", ex=60)
    assert resource.client.get("orchestrator-data:test") == b"1"


def test_redis_resource_reconnects_after_its_connection_is_killed(stack):
    resource = RedisResource()
    client = resource.client
    client.client_setname("victim")
    killer = RedisResource().client
    killer.client_kill_filter(_type="normal", skipme=True)
    assert client.ping()  # retried on a fresh connection


def test_redis_resource_unreachable(stack):
    health = RedisResource(redis_url=f"redis://:NotThisPassword2@127.0.0.1:{free_port()}/0", retries=1).health()
    assert not health.ok
    assert "NotThisPassword2" not in health.error


def test_elasticsearch_resource_health(stack):
    resource = ElasticsearchResource()
    health = resource.health()
    assert health.ok, health.error
    assert health.version.startswith("8.")
    assert health.detail["cluster_status"] in {"green", "yellow"}
    assert health.detail["nodes"] == 1


def test_elasticsearch_resource_unreachable(stack):
    resource = ElasticsearchResource(elasticsearch_url=f"http://127.0.0.1:{free_port()}", max_retries=1,
                                     request_timeout=2)
    health = resource.health()
    assert not health.ok
    assert "ConnectionError" in health.error


def test_secrets_are_env_vars_in_the_definitions(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:EnvSecret9@db.example:5432/app")
    resources = build_resources()
    # the configured value is an EnvVar reference, so the UI shows its name, not its value
    assert type(resources["postgres"].database_url).__name__ == "EnvVar"
    assert "EnvSecret9" not in repr(resources["postgres"])
    monkeypatch.delenv("DATABASE_URL")
    assert build_resources()["postgres"].database_url is None


def test_redact_is_applied_to_driver_errors():
    assert "pw" not in redact("could not connect: postgresql://u:pw@h/d")
