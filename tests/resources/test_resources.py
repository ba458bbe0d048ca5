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
    assert health.version.split()[0] in ("redis", "valkey")  # the server's version, its protocol beside it
    assert int(health.detail["protocol_version"].split(".")[0]) >= 7
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


def test_pool_sizes_come_from_the_settings_unless_set_on_the_resource(stack, monkeypatch):
    monkeypatch.setenv("DATABASE_POOL_SIZE", "2")
    monkeypatch.setenv("DATABASE_MAX_OVERFLOW", "1")
    monkeypatch.setenv("REDIS_MAX_CONNECTIONS", "3")
    postgres, redis = PostgresResource(), RedisResource()
    assert postgres.health().detail["pool_size"] == 2 and postgres.engine.pool._max_overflow == 1
    assert redis.health().detail["pool_max_connections"] == 3
    # the CLI builds its clients with the same factory, so both read the same numbers
    from orchestrator_data import connections
    from orchestrator_data.settings import load_settings

    settings = load_settings()
    engine = connections.postgres_engine(settings)
    try:
        assert engine.pool.size() == 2
    finally:
        engine.dispose()
    assert connections.redis_client(settings).connection_pool.max_connections == 3
    # a value set on the resource wins over the setting
    assert PostgresResource(pool_size=4).health().detail["pool_size"] == 4
    assert RedisResource(max_connections=7).health().detail["pool_max_connections"] == 7


def test_backup_storage_and_deployment_resources_read_the_settings(monkeypatch, tmp_path):
    import base64

    from orchestrator_data.backups import BackupKeyError
    from resources import BackupStorageResource, DeploymentResource

    key = base64.b64encode(bytes(range(32))).decode()
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "b"))
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", key)
    monkeypatch.setenv("BACKUP_MAX_AGE_HOURS", "30")
    monkeypatch.setenv("RESTORE_CHECK_MAX_AGE_DAYS", "9")
    monkeypatch.setenv("ENVIRONMENT", "production")
    storage = BackupStorageResource()
    assert storage.directory() == tmp_path / "b" and storage.key() == bytes(range(32))
    assert storage.verified_max_age_hours() == 30 and storage.restore_checked_max_age_hours() == 9 * 24
    assert DeploymentResource().name() == "production"
    overridden = BackupStorageResource(backup_dir=str(tmp_path / "c"), max_age_hours=2, restore_check_max_age_days=1)
    assert overridden.directory() == tmp_path / "c" and overridden.verified_max_age_hours() == 2
    assert overridden.restore_checked_max_age_hours() == 24
    assert DeploymentResource(environment="Testing").name() == "testing"
    with pytest.raises(BackupKeyError) as refused:
        BackupStorageResource(encryption_key="bm90LWEta2V5").key()
    assert "bm90LWEta2V5" not in str(refused.value)
    # the ring: BACKUP_ENCRYPTION_KEY alone until a ring file is set; the window and keep-N; the GDPR ledger
    assert storage.key_ring().current.material == bytes(range(32))
    assert storage.window_days() == 7 and storage.keep_newest() == 7
    assert storage.gdpr_ledger() == tmp_path / "b" / "gdpr-ledger.jsonl"
    monkeypatch.setenv("RECOVERY_WINDOW_DAYS", "3")
    monkeypatch.setenv("GDPR_LEDGER_FILE", str(tmp_path / "ledger.jsonl"))
    ring_file = tmp_path / "keys.json"
    monkeypatch.setenv("BACKUP_KEYRING_FILE", str(ring_file))
    fresh = BackupStorageResource(keep_last=2)
    assert fresh.window_days() == 3 and fresh.keep_newest() == 2 and fresh.gdpr_ledger() == tmp_path / "ledger.jsonl"
    with pytest.raises(BackupKeyError, match="does not exist"):
        fresh.key_ring()
    inside = BackupStorageResource(keyring_file=str(tmp_path / "b" / "keys.json"))
    with pytest.raises(BackupKeyError, match="inside BACKUP_DIR"):
        inside.key_ring()


def test_every_secret_of_every_resource_is_an_env_var(monkeypatch):
    secrets = {"DATABASE_URL": "postgresql://app:EnvSecret9@db.example:5432/app",
               "REDIS_URL": "redis://:EnvSecret8@cache.example:6379/0",
               "ELASTICSEARCH_PASSWORD": "EnvSecret7", "ELASTICSEARCH_API_KEY": "EnvSecret6",
               "BACKUP_ENCRYPTION_KEY": "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
               "ALERT_WEBHOOK_URL": "https://hooks.example/EnvSecret5"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    resources = build_resources()
    shown = repr(resources)
    for value in secrets.values():
        assert value not in shown
    assert resources["alerts"].postgres is resources["postgres"]
