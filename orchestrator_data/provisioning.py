"""`init` and `reset`: bring the whole data layer up, or tear it down and bring it up again.

The same functions back the CLI commands and the Dagster jobs. Each step reports what it did; a
step that fails stops the run with the reason (nothing after it runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
import sqlalchemy as sa

from elasticsearch import Elasticsearch

from orchestrator_data.errors import BadInput
from orchestrator_data.postgres import client as pg
from orchestrator_data.postgres import migrator
from orchestrator_data.redis import keyspace
from orchestrator_data.redis.errors import translated
from orchestrator_data.redis.setup import SetupReport, setup_redis
from orchestrator_data.search import sync
from orchestrator_data.search.indices import IndexInit, Layout, drop_indices


class ResetRefused(BadInput):
    """A reset that must not run (production, or no --confirm). The message says why."""


@dataclass(frozen=True)
class SearchTarget:
    """The cluster and the names the search indices live under, with the shape of new indices."""

    client: Elasticsearch
    layout: Layout
    shards: int = 1
    replicas: int = 0


@dataclass
class InitReport:
    migration: migrator.MigrationReport | None = None
    redis: SetupReport | None = None
    search: list[IndexInit] | None = None
    skipped: list[str] = field(default_factory=list)


@dataclass
class ResetReport:
    dropped_tables: list[str] = field(default_factory=list)
    redis_keys_deleted: int = 0
    search_indices_deleted: list[str] = field(default_factory=list)
    init: InitReport | None = None


def init(postgres: sa.Engine | str, redis_client: redis.Redis | None, search: SearchTarget | None = None) -> InitReport:
    """Migrate PostgreSQL to head, set up the Redis keyspace, create the search indices (templates,
    indices, aliases; what exists is left alone). None for Redis or search skips it."""
    report = InitReport()
    report.migration = migrator.upgrade(postgres)
    if redis_client is None:
        report.skipped.append("redis")
    else:
        report.redis = setup_redis(redis_client)
    if search is None:
        report.skipped.append("search")
    else:
        with pg.engine_for(postgres) as engine:
            report.search = sync.create_indices(engine, search.client, search.layout, shards=search.shards,
                                         replicas=search.replicas)
    return report


def check_reset_allowed(environment: str, confirm: bool) -> None:
    if environment == "production":
        raise ResetRefused("reset is refused in production: it drops every table and key of the data layer")
    if not confirm:
        raise ResetRefused("reset drops and recreates every table and key of the data layer; pass --confirm")


def delete_registered_keys(client: redis.Redis, batch: int = 1000) -> int:
    """UNLINK every key whose name the keyspace registry knows; other keys are left alone."""
    deleted = 0
    with translated("delete the keyspace"):
        pending: list = []
        for key in client.scan_iter(count=batch):
            if keyspace.classify(key) is not None:
                pending.append(key)
            if len(pending) >= batch:
                deleted += client.unlink(*pending)
                pending = []
        if pending:
            deleted += client.unlink(*pending)
    return deleted


def reset(environment: str, confirm: bool, postgres: sa.Engine | str, redis_client: redis.Redis | None,
          search: SearchTarget | None = None) -> ResetReport:
    check_reset_allowed(environment, confirm)
    report = ResetReport()
    report.dropped_tables = migrator.drop_everything(postgres)
    if redis_client is not None:
        report.redis_keys_deleted = delete_registered_keys(redis_client)
    if search is not None:
        report.search_indices_deleted = drop_indices(search.client, search.layout)
    report.init = init(postgres, redis_client, search)
    return report
