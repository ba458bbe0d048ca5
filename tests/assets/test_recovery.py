"""wal_archive, postgres_base_backup and their checks materialized on the session's recovery chain
(tests/recovery_chain.py), and wal_archive_sensor's judgement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from assets.recovery import (
    check_postgres_base_backup_window,
    check_wal_archive_rpo,
    postgres_base_backup,
    wal_archive,
    window_result,
)
from orchestrator_data.recovery.base_backups import list_base_backups
from orchestrator_data.recovery.status import ArchiveStatus
from resources import PostgresResource
from schedules.recovery import archive_problems

pytestmark = pytest.mark.integration


@pytest.fixture
def chain_env(recovery_chain, monkeypatch):
    for name, value in recovery_chain.env.items():
        monkeypatch.setenv(name, value)
    return recovery_chain


def test_the_archive_observed_a_base_backup_taken_and_the_checks_judged(chain_env):
    chain = chain_env
    before = len(list_base_backups(chain.layout))
    result = dg.materialize([wal_archive, postgres_base_backup, check_wal_archive_rpo, check_postgres_base_backup_window],
                            resources={"postgres": PostgresResource(database_url=chain.cluster.url())})
    assert result.success
    [observed] = result.asset_materializations_for_node("wal_archive")
    assert observed.metadata["streaming"].value is True and observed.metadata["gap_count"].value == 0
    [made] = result.asset_materializations_for_node("postgres_base_backup")
    assert made.metadata["kind"].value == "incremental"  # the full one is younger than a week
    assert len(list_base_backups(chain.layout)) == before + 1
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["rpo"].passed
    # the chain is minutes old: a 7-day window is not covered yet, and the check says why
    assert not checks["window"].passed and "window of 7 days" in checks["window"].description
    assert window_result(chain.layout, 1 / 86400 / 1000, chain.key_for,
                         now=datetime.now(UTC) + timedelta(minutes=5)).passed


def _status(**changes) -> ArchiveStatus:
    values = dict(slot="s", archiver_running=True, streaming=True, current_lsn="0/10", archived_lsn="0/10",
                  flushed_lsn="0/10", last_archived_at=None, lag_bytes=0, lag_seconds=0.0, slot_retained_bytes=100,
                  slot_wal_status="reserved", sync=False)
    values.update(changes)
    return ArchiveStatus(**values)


def test_the_sensor_alerts_for_a_stopped_archiver_a_lost_slot_and_too_much_retained():
    assert archive_problems(_status(), alert_bytes=1 << 20) == {}
    assert set(archive_problems(_status(streaming=False), alert_bytes=1 << 20)) == {"stopped"}
    assert set(archive_problems(_status(slot_wal_status="lost"), alert_bytes=1 << 20)) == {"slot"}
    assert set(archive_problems(_status(slot_retained_bytes=2 << 20), alert_bytes=1 << 20)) == {"retained"}


def test_recovery_prune_plans_under_the_window(chain_env):
    from assets.recovery import recovery_prune

    chain = chain_env
    resources = {"postgres": PostgresResource(database_url=chain.cluster.url())}
    backups = list_base_backups(chain.layout)
    before = [b.id for b in backups]
    dry_run = {"ops": {"recovery_prune": {"config": {"dry_run": True}}}}  # the chain is shared: plan only
    # the chain is minutes old: a 7-day window needs every backup, and the WAL from the oldest one's start
    result = dg.materialize([recovery_prune], resources=resources, run_config=dry_run)
    [kept] = result.asset_materializations_for_node("recovery_prune")
    assert kept.metadata["pruned_base_backups"].value == 0
    assert kept.metadata["wal_kept_from"].value == backups[0].as_dict()["start_lsn"]
    assert kept.metadata["kept_base_backups"].value == len(backups) and kept.metadata["dry_run"].value is True
    assert [b.id for b in list_base_backups(chain.layout)] == before  # a dry run deletes nothing


def test_system_metrics_carries_the_rpo_and_the_window_when_the_archive_is_on(chain_env, es, redis_client):
    import uuid

    from assets.metrics import METRICS_ASSETS
    from assets.search import SEARCH_INDEX_ASSETS
    from orchestrator_data.search.indices import drop_indices
    from resources import ElasticsearchResource, RedisResource

    chain = chain_env
    elasticsearch = ElasticsearchResource(index_prefix=f"m{uuid.uuid4().hex[:10]}")
    try:
        result = dg.materialize([*SEARCH_INDEX_ASSETS, *METRICS_ASSETS], resources={
            "postgres": PostgresResource(database_url=chain.cluster.url()), "redis": RedisResource(),
            "elasticsearch": elasticsearch},
            selection=dg.AssetSelection.assets("search_system_metrics_index", "system_metrics"))
        assert result.success
        metadata = result.asset_materializations_for_node("system_metrics")[0].metadata
        assert metadata["wal_archive_lag_bytes"].value >= 0 and metadata["wal_archive_lag_seconds"].value >= 0
        assert 0 <= metadata["recovery_window_days"].value < 1   # minutes old: 0.000 at the UI's 3 decimals
        assert metadata["recovery_window"].value.startswith(chain.full.finished_at.isoformat(timespec="seconds"))
        elasticsearch.client.indices.refresh(index=elasticsearch.layout().read_alias("system_metrics"))
        stored = elasticsearch.client.search(index=elasticsearch.layout().read_alias("system_metrics"),
                                             query={"term": {"service": "wal_archive"}}, size=20)["hits"]["hits"]
        values = {h["_source"]["metric"]: h["_source"]["value"] for h in stored}
        assert values["archive_lag_seconds"] >= 0 and 0 < values["recovery_window_days"] < 1
        assert values["recovery_window_from"] == chain.full.finished_at.timestamp()
    finally:
        drop_indices(elasticsearch.client, elasticsearch.layout())
        elasticsearch.client.close()
