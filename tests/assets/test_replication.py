"""postgres_replication materialized through replication_job on a real primary and standby
(tests/replication_pair.py), and its lag check passing and failing against REPLICATION_LAG_TARGET_BYTES."""

from __future__ import annotations

import dagster as dg

from assets.replication import check_replication_lag, postgres_replication
from resources import PostgresResource


def _materialize(pair):
    return dg.materialize([postgres_replication, check_replication_lag],
                          resources={"postgres": PostgresResource(database_url=pair.url(pair.primary))})


def _check(result) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_the_asset_records_who_is_primary_the_timeline_and_each_standby(standby_pair):
    pair = standby_pair
    pair.wait_replayed()
    result = _materialize(pair)
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["role"].value == "primary" and metadata["timeline"].value == 1
    assert metadata["primary"].value == f"127.0.0.1:{pair.primary.port}" and metadata["standbys"].value == 1
    [row] = metadata["standby_table"].value.records
    assert row.data["standby"] == pair.slot and row.data["state"] == "streaming" and row.data["sync_state"] == "async"
    assert [r.data["slot"] for r in metadata["slot_table"].value.records] == [pair.slot]
    assert "max_replay_lag_bytes" in metadata and "max_slot_retained" in metadata  # the human size beside the bytes
    assert f"standby {pair.slot} streaming async" in metadata["summary"].value
    assert event.materialization.tags["dagster/data_version"] == f"primary:127.0.0.1:{pair.primary.port}:timeline-1"
    check = _check(result)
    assert check.passed and "1 standby(s) within 30 s" in check.description


def test_the_lag_check_fails_for_a_standby_further_behind_than_the_target(standby_pair, monkeypatch):
    pair = standby_pair
    monkeypatch.setenv("REPLICATION_LAG_TARGET_BYTES", str(1 << 16))
    pair.pause_replay()
    try:
        with pair.connect(pair.primary) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS lag_filler (pad text)")
            conn.execute("INSERT INTO lag_filler SELECT repeat('x', 500) FROM generate_series(1, 1000)")
        result = _materialize(pair)
    finally:
        with pair.connect(pair.standby) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
    pair.wait_replayed()
    check = _check(result)
    assert not check.passed and check.description.startswith(f"standby {pair.slot} has ")
    assert "not replayed (target 64.0 KiB)" in check.description
    assert check.metadata["behind"].value == 1 and check.metadata["target_bytes"].value == 1 << 16
