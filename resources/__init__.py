"""Dagster resources wrapping the core's clients. Secrets come in through dg.EnvVar, so the UI
shows the variable's name, never its value; an unset URL means the local stack, and any field left
unset falls back to the settings (environment, .env.local, .env), exactly as the CLI reads them."""

from __future__ import annotations

import os

import dagster as dg

from resources.alerts import AlertsResource
from resources.backups import BackupStorageResource
from resources.deployment import DeploymentResource
from resources.elasticsearch import ElasticsearchResource
from resources.postgres import PostgresResource
from resources.redis import RedisResource

__all__ = ["AlertsResource", "BackupStorageResource", "DeploymentResource", "ElasticsearchResource",
           "PostgresResource", "RedisResource", "build_resources"]


def _env(name: str):
    # Presence is checked at load time; the value is read by Dagster at run time, never stored.
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_resources() -> dict:
    postgres = PostgresResource(database_url=_env("DATABASE_URL"))
    redis = RedisResource(redis_url=_env("REDIS_URL"))
    return {
        "postgres": postgres,
        "redis": redis,
        "elasticsearch": ElasticsearchResource(
            elasticsearch_url=_env("ELASTICSEARCH_URL"),
            api_key=_env("ELASTICSEARCH_API_KEY"),
            username=_env("ELASTICSEARCH_USERNAME"),
            password=_env("ELASTICSEARCH_PASSWORD"),
            ca_certs=_env("ELASTICSEARCH_CA_CERT"),
        ),
        "backup_storage": BackupStorageResource(encryption_key=_env("BACKUP_ENCRYPTION_KEY")),
        "alerts": AlertsResource(postgres=postgres, redis=redis, webhook_url=_env("ALERT_WEBHOOK_URL")),
        "deployment": DeploymentResource(),
    }
