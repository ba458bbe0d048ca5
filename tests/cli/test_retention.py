"""`orchestrator-data retention run|show` through the console script on the real servers: a dry run that
changes nothing, the purge, production refused without --confirm, a bad policy file refused (exit 2)
with nothing changed."""

from __future__ import annotations

import json

import pytest

from tests.retention_data import KEEP_ALL, OLD_EXECUTIONS, policy_dir, scalar, seeded_for_retention

pytestmark = pytest.mark.integration


@pytest.fixture
def seeded(engine):
    return seeded_for_retention(engine)


@pytest.fixture
def env(migrated_url, prefix, tmp_path):
    directory = policy_dir(tmp_path, **(KEEP_ALL | {"executions": {"delete_after": "90d", "batch_size": 40}}))
    return {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix, "RETENTION_POLICY_DIR": str(directory)}


def _executions(seeded) -> int:
    return scalar(seeded.engine, "SELECT count(*) FROM executions")


def test_dry_run_then_run(cli, seeded, env):
    dry = cli("retention", "run", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would purge" in dry.stdout and f"{OLD_EXECUTIONS}" in dry.stdout
    assert _executions(seeded) == seeded.executions

    done = cli("retention", "run", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    executions = next(t for t in report["tables"] if t["table"] == "executions")
    assert (executions["purged"], executions["batches"], report["rows_purged"]) == (OLD_EXECUTIONS, 3, OLD_EXECUTIONS)
    assert _executions(seeded) == seeded.executions - OLD_EXECUTIONS


def test_a_purge_is_recorded_as_the_assets_materialization(cli, stack, seeded, env):
    import dagster as dg

    from orchestrator_data.cli.dagster_env import dagster_home
    from orchestrator_data.settings import load_settings

    done = cli("retention", "run", env=env | {"DAGSTER_PG_URL": stack.endpoints().dagster_pg_url,
                                              "ORCHESTRATOR_DATA_RECORD": "1"})
    assert done.returncode == 0, done.stderr
    assert "recorded in Dagster: retention_purge" in done.stderr
    with dg.DagsterInstance.from_config(str(dagster_home(load_settings()))) as instance:
        recorded = instance.get_latest_materialization_event(dg.AssetKey("retention_purge")).asset_materialization
    assert recorded.tags["orchestrator-data/source"] == "cli"
    assert recorded.metadata["postgres_executions_purged"].value == OLD_EXECUTIONS


def test_production_without_confirm_is_refused_with_exit_2(cli, seeded, env):
    production = env | {"ENVIRONMENT": "production"}
    refused = cli("retention", "run", env=production)
    assert refused.returncode == 2
    assert "--confirm" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert _executions(seeded) == seeded.executions
    assert cli("retention", "run", "--dry-run", env=production).returncode == 0
    assert _executions(seeded) == seeded.executions
    confirmed = cli("retention", "run", "--confirm", env=production)
    assert confirmed.returncode == 0, confirmed.stderr
    assert _executions(seeded) == seeded.executions - OLD_EXECUTIONS


def test_a_bad_policy_file_is_refused_with_exit_2_and_nothing_changes(cli, seeded, env, tmp_path):
    bad = policy_dir(tmp_path / "bad", executions={"delete_after": "ninety days"})
    for command in (("run",), ("show",)):
        refused = cli("retention", *command, env=env | {"RETENTION_POLICY_DIR": str(bad)})
        assert refused.returncode == 2
        assert str(bad / "executions.json") in refused.stderr and "'delete_after'" in refused.stderr
    assert _executions(seeded) == seeded.executions


def test_show_names_each_policy_and_its_file(cli, env):
    shown = cli("retention", "show", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    policies = json.loads(shown.stdout)
    assert list(policies) == ["workflows", "marketplace_items", "executions", "audit_logs"]
    assert policies["executions"]["delete_after"] == "90d" and policies["executions"]["source"].endswith("executions.json")
    assert policies["audit_logs"]["delete_after"] is None
