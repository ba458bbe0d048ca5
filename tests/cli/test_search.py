"""`orchestrator-data search init|sync|status` through the installed console script, on the real servers:
a whole round, exit codes of bad input and an unreachable cluster, no secret in any output."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.stack.common import free_port

pytestmark = pytest.mark.integration


def _secrets(stack) -> list[str]:
    return list(json.loads((stack.root / "secrets.json").read_text()).values())


def test_init_sync_status_round(cli, stack, migrated_url, engine, prefix):
    seed(engine, "testing", SeedPlan(executions=150))
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix}

    def run(*args, expect):
        result = cli("search", *args, env=env)
        assert result.returncode == expect, result.stdout + result.stderr
        for secret in _secrets(stack):
            assert secret not in result.stdout + result.stderr
        return result

    missing = json.loads(run("status", "--json", expect=1).stdout)
    assert not missing["indices"]["workflows"]["exists"]
    created = run("init", expect=0).stdout
    assert created.count("created") == 5 and f"{prefix}-executions" in created
    assert run("init", expect=0).stdout.count("exists") == 5

    first = run("sync", expect=0).stdout
    assert sum("full" in line for line in first.splitlines() if line.startswith("✓")) == 4
    assert "executions (full): 150 rows" in first  # plain progress lines, piped
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE executions SET status = 'cancelled' WHERE id IN (SELECT id FROM executions LIMIT 3)"))
    second = run("sync", "--index", "executions", expect=0).stdout
    assert "incremental" in second and "3 written" in second

    state = json.loads(run("status", "--json", expect=0).stdout)["indices"]
    with engine.connect() as conn:
        executions = conn.execute(sa.text("SELECT count(*) FROM executions")).scalar_one()
    entry = state["executions"]
    assert entry["documents"] == entry["postgres_rows"] == executions == 150
    assert entry["alias"] == f"{prefix}-executions" and entry["backing_indices"] == [f"{prefix}-executions-v1-000001"]
    assert entry["mapping_version"] == 1 and entry["lag_rows"] >= 0 and entry["lag_seconds"] is not None
    assert state["system_metrics"]["postgres_rows"] is None
    assert "executions" in run("status", expect=0).stdout


def test_bad_input_exits_2_and_an_unreachable_cluster_exits_1(cli, stack, migrated_url, prefix):
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix}
    unknown = cli("search", "sync", "--index", "nope", env=env)
    assert unknown.returncode == 2 and "unknown index 'nope'" in unknown.stderr
    unsynced = cli("search", "sync", "--index", "system_metrics", env=env)
    assert unsynced.returncode == 2 and "not synced" in unsynced.stderr
    bad_prefix = cli("search", "status", env={**env, "SEARCH_INDEX_PREFIX": "Bad Prefix"})
    assert bad_prefix.returncode == 2 and "SEARCH_INDEX_PREFIX" in bad_prefix.stderr
    not_initialized = cli("search", "sync", env=env)
    assert not_initialized.returncode == 1 and "search init" in not_initialized.stderr
    dead = cli("search", "status", env={**env, "ELASTICSEARCH_URL": f"http://127.0.0.1:{free_port()}"})
    assert dead.returncode == 1 and "ConnectionError" in dead.stderr and "Traceback" not in dead.stderr


def test_repair_and_reindex(cli, stack, migrated_url, engine, prefix):
    seed(engine, "testing", SeedPlan(executions=80))
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix}
    assert cli("search", "init", env=env).returncode == 0
    assert cli("search", "sync", "--index", "executions", env=env).returncode == 0

    from orchestrator_data import connections
    from orchestrator_data.settings import load_settings

    client = connections.elasticsearch_client(load_settings())
    alias = f"{prefix}-executions"
    victim = client.search(index=alias, size=1)["hits"]["hits"][0]
    client.delete(index=victim["_index"], id=victim["_id"], refresh=True)
    repaired = cli("search", "repair", "executions", env=env)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "80 documents = 80 rows" in repaired.stdout and "rewrote 1" in repaired.stdout

    rebuilt = cli("search", "reindex", "executions", env=env)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert f"{alias}-v1-000001 → {alias}-v1-000002" in rebuilt.stdout and "80 documents" in rebuilt.stdout
    assert client.count(index=alias)["count"] == 80
    client.close()
    assert cli("search", "reindex", "system_metrics", env=env).returncode == 2


def test_status_includes_each_index_unless_skipped(cli, stack, migrated_url, prefix):
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix}
    before = cli("status", env=env)
    assert before.returncode == 0 and "search workflows" in before.stdout and "missing" in before.stdout
    assert cli("search", "init", env=env).returncode == 0 and cli("search", "sync", env=env).returncode == 0
    report = json.loads(cli("status", "--json", env=env).stdout)
    assert report["search"]["indices"]["executions"]["documents"] == 0
    assert report["search"]["indices"]["executions"]["lag_rows"] == 0
    skipped = cli("status", "--json", "--skip-search", env=env)
    assert skipped.returncode == 0 and "search" not in json.loads(skipped.stdout)


def test_query_finds_only_the_organizations_documents(cli, stack, migrated_url, engine, prefix):
    seed(engine, "testing", SeedPlan(executions=60))
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix}
    assert cli("search", "init", env=env).returncode == 0 and cli("search", "sync", env=env).returncode == 0
    with engine.connect() as conn:
        org, name = conn.execute(sa.text("SELECT organization_id, name FROM workflows WHERE deleted_at IS NULL "
                                         "LIMIT 1")).one()
        orgs = {str(o) for o in conn.execute(sa.text("SELECT id FROM organizations")).scalars()}
    found = cli("search", "query", str(org), name.split()[0], "--index", "workflows", "--json", env=env)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert hits and {h["organization_id"] for h in hits} == {str(org)}
    assert set(hits[0]) == {"index", "id", "organization_id", "score"} and hits[0]["index"] == "workflows"
    everything = json.loads(cli("search", "query", str(org), "", "--json", "--size", "100", env=env).stdout)
    assert everything and all(h["organization_id"] == str(org) or h["index"] == "marketplace" for h in everything)
    assert len(orgs) > 1
    assert cli("search", "query", str(org), "x", "--index", "nope", env=env).returncode == 2
    bad = cli("search", "query", "not-a-uuid-Secret", "x", env=env)
    assert bad.returncode == 2 and "not-a-uuid-Secret" not in bad.stderr
    assert "hit(s)" in cli("search", "query", str(org), name, env=env).stdout


def test_load_one_month_then_again_recorded_and_bad_input_exits_2(cli, stack, migrated_url, engine, prefix):
    from tests.cli.test_recording import _dagster, _latest

    seed(engine, "testing", SeedPlan(executions=150))  # created from May to November 2026
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix, "SEARCH_PARTITIONS_START": "2026-06-01"}
    assert cli("search", "init", "--index", "executions", env=env).returncode == 0
    with engine.connect() as conn:
        october = conn.execute(sa.text("SELECT count(*) FROM executions WHERE created_at >= '2026-10-01' "
                                       "AND created_at < '2026-11-01'")).scalar_one()
    loaded = cli("search", "load", "executions", "--month", "2026-10", "--json", env={**env, **_dagster(stack)})
    assert loaded.returncode == 0, loaded.stderr
    done = json.loads(loaded.stdout)
    assert (done["partition"], done["rows_read"], done["documents_written"]) == ("2026-10", october, october) and october
    recorded = _latest("search_executions_full_load")
    assert recorded.partition == "2026-10" and recorded.metadata["documents_written"].value == october
    again = cli("search", "load", "executions", "--month", "2026-10", env=env)
    assert again.returncode == 0 and f"0 written, {october} already current" in again.stdout

    for args, problem in [(("workflows", "--month", "2026-10"), "index 'workflows' is not loaded by month"),
                          (("executions", "--month", "2026-05"), "month 2026-05 has no partition: they run from 2026-06")]:
        refused = cli("search", "load", *args, env=env)
        assert refused.returncode == 2 and problem in refused.stderr, refused.stderr
    bad_start = cli("search", "load", "executions", "--month", "2026-10", env={**env, "SEARCH_PARTITIONS_START": "2026-06-02"})
    assert bad_start.returncode == 2 and "SEARCH_PARTITIONS_START" in bad_start.stderr


def test_a_seed_over_a_seed_leaves_search_equal_to_postgres(cli, stack, migrated_url, engine, es, prefix):
    from orchestrator_data.search import reconcile
    from orchestrator_data.search.indices import Layout

    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix}
    synced = ("workflows", "executions", "marketplace", "audit_logs")
    first = cli("seed", "run", "-e", "development", "--scale", "600", env=env)
    assert first.returncode == 0 and "no index yet" in first.stdout, first.stdout + first.stderr
    assert cli("search", "init", env=env).returncode == 0
    assert cli("search", "sync", env=env).returncode == 0
    with engine.begin() as conn:  # documents at higher versions than the rows the next seed re-creates
        conn.execute(sa.text("UPDATE executions SET status = 'cancelled'"))
    assert cli("search", "sync", env=env).returncode == 0

    again = cli("seed", "run", "-e", "testing", "--scale", "200", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "executions   rebuild" in again.stdout and "equal to PostgreSQL" in again.stdout
    state = json.loads(cli("search", "status", "--json", env=env).stdout)["indices"]
    for name in synced:
        assert state[name]["state"] == "in step", (name, state[name])
        assert state[name]["documents"] == state[name]["postgres_rows"] and not state[name]["organizations_differing"]
        assert reconcile.reconcile(engine, es, Layout(prefix), name).ok, name
    assert state["executions"]["documents"] == 200

    cleaned = cli("seed", "clean", "--confirm", "-e", "testing", env=env)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    state = json.loads(cli("search", "status", "--json", env=env).stdout)["indices"]
    assert all(state[name]["state"] == "in step" for name in synced), state
    assert state["executions"]["documents"] == state["executions"]["postgres_rows"] == 0


def test_status_says_differs_for_a_wrong_index_and_a_full_sync_mends_it(cli, stack, migrated_url, engine, es, prefix):
    seed(engine, "testing", SeedPlan(executions=40))
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix}
    assert cli("search", "init", env=env).returncode == 0 and cli("search", "sync", env=env).returncode == 0
    # a document no row stands for, under an organization of its own: nothing in the audit trail says so
    es.index(index=f"{prefix}-workflows", id="00000000-0000-4000-8000-0000000000aa", refresh=True,
             document={"name": "stray", "organization_id": "00000000-0000-4000-8000-0000000000bb"})
    wrong = cli("search", "status", env=env)
    assert wrong.returncode == 1 and "workflows: differs" in wrong.stdout, wrong.stdout
    assert "search sync --full --index workflows" in wrong.stdout
    entry = json.loads(cli("search", "status", "--json", env=env).stdout)["indices"]["workflows"]
    assert entry["state"] == "differs" and entry["lag_rows"] == 0
    assert entry["organizations_differing"] == {"00000000-0000-4000-8000-0000000000bb": {"postgres_rows": 0,
                                                                                          "documents": 1}}
    mended = cli("search", "sync", "--full", "--index", "workflows", env=env)
    assert mended.returncode == 0, mended.stdout + mended.stderr
    entry = json.loads(cli("search", "status", "--json", env=env).stdout)["indices"]["workflows"]
    assert entry["state"] == "in step" and entry["documents"] == entry["postgres_rows"]
