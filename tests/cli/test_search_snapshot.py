"""`orchestrator-data search snapshot create|list|restore-check|prune` through the installed console
script, on the real servers: a whole round, --json's shape, a failing restore check (exit 1), an
unknown snapshot and a bad location (exit 2), a snapshot whose file is gone from the repository (named,
skipped, pruned), no secret in any output."""

from __future__ import annotations

import json
import uuid

import pytest

from orchestrator_data import connections
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import sync
from orchestrator_data.search.indices import Layout, drop_indices
from orchestrator_data.search.snapshots import Repository
from orchestrator_data.settings import load_settings
from tests.search_snapshots import break_snapshot, delete_repository

pytestmark = pytest.mark.integration


@pytest.fixture
def synced(stack, migrated_url, engine):
    """A seeded, synced prefix of its own, and a client; its snapshots and indices are deleted afterwards."""
    layout = Layout(f"s{uuid.uuid4().hex[:10]}")
    es = connections.elasticsearch_client(load_settings())
    seed(engine, "testing", SeedPlan(executions=60))
    sync.create_indices(engine, es, layout)
    sync.sync(engine, es, layout)
    yield layout, {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": layout.prefix}, es
    delete_repository(es, Repository(f"{layout.prefix}-snapshots", layout.prefix))
    drop_indices(es, layout)
    leftovers = list(es.indices.get(index=f"{layout.prefix}-*", allow_no_indices=True))
    if leftovers:
        es.indices.delete(index=",".join(leftovers))
    es.close()


def _secrets(stack) -> list[str]:
    return list(json.loads((stack.root / "secrets.json").read_text()).values())


def test_create_list_restore_check_prune_round(cli, stack, synced):
    layout, env, _ = synced

    def run(*args, expect, extra=None):
        result = cli("search", "snapshot", *args, env={**env, **(extra or {})})
        assert result.returncode == expect, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        for secret in _secrets(stack):
            assert secret not in result.stdout + result.stderr
        return result

    empty = json.loads(run("list", "--json", expect=0).stdout)
    assert empty == {"repository": f"{layout.prefix}-snapshots", "location": layout.prefix, "snapshots": []}
    assert "no successful snapshot" in run("restore-check", expect=2).stderr

    first = run("create", expect=0).stdout
    assert f"snapshot {layout.prefix}-" in first and "5 indices" in first
    [listed] = json.loads(run("list", "--json", expect=0).stdout)["snapshots"]
    assert listed["state"] == "SUCCESS" and listed["restore_check"] is None and listed["size_bytes"] > 0
    assert listed["recorded"]["executions-v1-000001"] == 60 and len(listed["indices"]) == 5
    assert set(listed) >= {"name", "started_at", "finished_at", "duration_s", "documents"}

    checked = run("restore-check", "latest", expect=0).stdout
    assert "restores" in checked and "executions" in checked
    [listed] = json.loads(run("list", "--json", expect=0).stdout)["snapshots"]
    assert listed["restore_check"]["ok"] is True
    assert {i["index"]: i["restored"] for i in listed["restore_check"]["summary"]["indices"]}["executions"] == 60
    assert listed["name"] in run("list", expect=0).stdout

    assert "no snapshot" in run("restore-check", f"{layout.prefix}-20200101-000000-abcd", expect=2).stderr

    second = run("create", expect=0)
    dry = run("prune", "--keep", "1", "--dry-run", expect=0).stdout
    assert f"would delete {listed['name']}" in dry and "1 kept" in dry
    assert len(json.loads(run("list", "--json", expect=0).stdout)["snapshots"]) == 2
    pruned = run("prune", "--keep", "1", expect=0).stdout
    assert f"deleted {listed['name']}" in pruned
    [left] = json.loads(run("list", "--json", expect=0).stdout)["snapshots"]
    assert left["name"] in second.stdout
    assert run("prune", expect=0).stdout.strip().endswith("0 snapshot(s) deleted, 1 kept")
    assert run("prune", "--keep", "0", expect=2).returncode == 2


def test_a_restore_check_that_finds_a_difference_exits_1(cli, stack, synced):
    layout, env, es = synced
    assert cli("search", "snapshot", "create", env=env).returncode == 0
    # the live documents change without their version moving (what a corrupting writer would do):
    # the restored copies differ at the same version
    alias = layout.read_alias("workflows")
    for hit in es.search(index=alias, size=1000, version=True)["hits"]["hits"]:
        es.index(index=hit["_index"], id=hit["_id"], version=hit["_version"], version_type="external_gte",
                 document={**hit["_source"], "description": "tampered"})
    es.indices.refresh(index=alias)
    failed = cli("search", "snapshot", "restore-check", env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "differs from the live one" in failed.stderr and "Traceback" not in failed.stderr
    assert not list(es.indices.get(index=f"{layout.prefix}-restorecheck-*", allow_no_indices=True))
    [listed] = json.loads(cli("search", "snapshot", "list", "--json", env=env).stdout)["snapshots"]
    assert listed["restore_check"]["ok"] is False


def test_a_location_outside_path_repo_exits_2_naming_the_variable(cli, stack, synced):
    layout, env, _ = synced
    bad = cli("search", "snapshot", "list", env={**env, "SEARCH_SNAPSHOT_REPOSITORY": f"{layout.prefix}-bad",
                                                  "SEARCH_SNAPSHOT_LOCATION": "/not/under/path_repo"})
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "SEARCH_SNAPSHOT_LOCATION" in bad.stderr and "path.repo" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    bad_keep = cli("search", "snapshot", "prune", env={**env, "SEARCH_SNAPSHOT_KEEP": "0"})
    assert bad_keep.returncode == 2 and "SEARCH_SNAPSHOT_KEEP" in bad_keep.stderr


def test_a_snapshot_whose_file_is_gone_is_named_skipped_and_pruned(cli, stack, synced):
    layout, env, es = synced

    def run(*args, expect):
        result = cli("search", "snapshot", *args, env=env)
        assert result.returncode == expect, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        for secret in _secrets(stack):
            assert secret not in result.stdout + result.stderr
        return result

    run("create", expect=0)
    run("create", expect=0)
    older, newest = [s["name"] for s in json.loads(run("list", "--json", expect=0).stdout)["snapshots"]]
    break_snapshot(es, Repository(f"{layout.prefix}-snapshots", layout.prefix), newest)

    listed = json.loads(run("list", "--json", expect=0).stdout)["snapshots"]
    assert [(s["name"], s["state"]) for s in listed] == [(older, "SUCCESS"), (newest, "BROKEN")]
    assert listed[0]["problem"] is None and "is missing" in listed[1]["problem"]
    shown = run("list", expect=0).stdout
    assert f"{newest} is broken: " in shown and "is missing" in shown

    checked = run("restore-check", expect=0).stdout  # latest: the newest one that can be read
    assert f"{older} restores" in checked
    refused = run("restore-check", newest, expect=1).stderr
    assert newest in refused and "cannot be read" in refused and len(refused.strip().splitlines()) == 1

    pruned = run("prune", expect=0).stdout
    assert f"deleted {newest}" in pruned and pruned.strip().endswith("1 snapshot(s) deleted, 1 kept")
    assert [s["name"] for s in json.loads(run("list", "--json", expect=0).stdout)["snapshots"]] == [older]
