"""`orchestrator-data recovery reconcile` in process, on the real servers: after the database moved back in
time, every synced index that exists is rebuilt at once and recorded in Dagster with why; bad input is one line, exit 2."""

from __future__ import annotations

import json

import pytest

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import sync
from orchestrator_data.search.indices import Layout
from tests.cli.test_recording import _dagster, _latest
from tests.orchestrator_data.search.test_history import change_everything
from tests.search_contents import documents, rows
from tests.time_travel import drop_point, go_back, take_point

pytestmark = pytest.mark.integration


def test_reconcile_rebuilds_every_index_and_records_why(cli, stack, migrated_url, engine, es, prefix):
    layout = Layout(prefix)
    seed(engine, "testing", SeedPlan(executions=30))
    sync.create_indices(engine, es, layout, ("executions",))  # only indices that exist are rebuilt
    sync.sync(engine, es, layout, ("executions",))
    point = take_point(stack, migrated_url, engine)
    try:
        after = change_everything(engine)
        sync.sync(engine, es, layout, ("executions",))
        go_back(stack, point, engine)
    finally:
        drop_point(stack, point)

    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix, **_dagster(stack)}
    done = cli("recovery", "reconcile", "--reason", "PITR to 14:02:59", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["reason"] == "PITR to 14:02:59" and set(report["search"]) == {"executions"}
    assert report["search"]["executions"]["removed"] == 1 and report["search"]["executions"]["mode"] == "rebuild"
    assert set(report["redis"]) == {"execution_status", "queue_entries", "dead_letters", "cache", "sessions"}
    assert after["inserted"] not in documents(es, layout, "executions")
    assert set(documents(es, layout, "executions")) == rows(engine, "executions")
    assert "recorded in Dagster: search_executions_documents" in done.stderr
    recorded = _latest("search_executions_documents").metadata
    assert recorded["mode"].value == "rebuild"
    assert recorded["rebuilt_because"].value == "brought in line after a recovery: PITR to 14:02:59"


def test_reconcile_without_a_reason_is_refused_in_one_line(cli, migrated_url, prefix):
    refused = cli("recovery", "reconcile", "--reason", "  ", env={"DATABASE_URL": migrated_url,
                                                                  "SEARCH_INDEX_PREFIX": prefix})
    assert refused.returncode == 2 and "a reason is required" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
