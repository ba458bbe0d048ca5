"""`orchestrator-data search rollover|retention|lifecycle` through the console script, on the real node:
dry runs that change nothing, the real thing, a policy directory, bad policy files, ILM in status."""

from __future__ import annotations

import json
import time

import pytest

from orchestrator_data.search import indices
from orchestrator_data.search.indices import Layout

from tests.search_documents import METRICS, add_metrics_documents

pytestmark = pytest.mark.integration


@pytest.fixture
def layout(prefix):
    return Layout(prefix)  # dropped by the `prefix` fixture


@pytest.fixture
def policies(tmp_path):
    (tmp_path / "system_metrics.json").write_text(json.dumps({
        "index": METRICS, "rollover": {"max_docs": 2}, "retention": {"delete_after": "1s"}}))
    return tmp_path


def _backing(es, layout) -> list[str]:
    return sorted(es.indices.get_alias(name=layout.read_alias(METRICS)))


def test_rollover_and_retention_dry_run_then_for_real(cli, stack, migrated_url, es, layout, policies):
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": layout.prefix, "SEARCH_LIFECYCLE_DIR": str(policies)}
    indices.init_indices(es, layout)
    add_metrics_documents(es, layout, 3)
    first = _backing(es, layout)

    dry = cli("search", "rollover", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would roll over" in dry.stdout and "max_docs" in dry.stdout
    assert _backing(es, layout) == first
    as_json = json.loads(cli("search", "rollover", "--dry-run", "--json", "--index", METRICS, env=env).stdout)
    [decision] = as_json
    docs = next(c for c in decision["checks"] if c["condition"] == "max_docs")
    assert decision["action"] == "would roll over" and docs["measured"] == 3 and docs["limit"] == 2 and docs["met"]
    guard = next(c for c in decision["checks"] if c["condition"] == "min_docs")
    assert guard["met"] and guard["threshold"] == "1"

    done = cli("search", "rollover", env=env)
    assert done.returncode == 0, done.stderr
    assert "rolled over" in done.stdout and layout.backing(METRICS, 1, 2) in done.stdout
    assert len(_backing(es, layout)) == 2
    # the other four keep the package's policies: nothing of theirs is big or old enough
    assert done.stdout.count("stays") == 4

    time.sleep(1.2)
    plan = json.loads(cli("search", "retention", "--dry-run", "--json", "--index", METRICS, env=env).stdout)
    assert plan[0]["deleted"] == [] and [b["action"] for b in plan[0]["backing"]] == ["delete", "write index"]
    assert len(_backing(es, layout)) == 2
    gone = cli("search", "retention", env=env)
    assert gone.returncode == 0, gone.stderr
    assert "deleted" in gone.stdout and "write index" in gone.stdout
    assert _backing(es, layout) == [layout.backing(METRICS, 1, 2)]


def test_a_bad_policy_file_is_refused_with_exit_2_naming_file_and_field(cli, stack, migrated_url, layout, tmp_path):
    (tmp_path / "executions.json").write_text(json.dumps({"index": "executions", "rollover": {"max_dogs": 5}}))
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": layout.prefix, "SEARCH_LIFECYCLE_DIR": str(tmp_path)}
    for args in (("search", "rollover", "--dry-run"), ("search", "retention"), ("search", "lifecycle", "show"),
                 ("search", "lifecycle", "export")):
        result = cli(*args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "executions.json" in result.stderr and "rollover.max_dogs" in result.stderr
        assert "Traceback" not in result.stderr
    unknown = cli("search", "rollover", "--index", "nope", env=env)
    assert unknown.returncode == 2 and "unknown index 'nope'" in unknown.stderr


def test_status_says_there_is_no_ilm_and_export_prints_the_equivalent_policies(cli, stack, migrated_url, layout,
                                                                               policies):
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": layout.prefix, "SEARCH_LIFECYCLE_DIR": str(policies)}
    status = cli("search", "status", "--json", env=env)
    assert json.loads(status.stdout)["ilm"] == {"available": False, "status": None}
    human = cli("search", "status", env=env)
    assert "has no ILM" in human.stdout and "Traceback" not in human.stderr

    exported = cli("search", "lifecycle", "export", env=env)
    assert exported.returncode == 0, exported.stderr
    body = json.loads(exported.stdout)
    assert set(body) == {f"{layout.prefix}-{name}" for name in indices.NAMES}
    metrics = body[f"{layout.prefix}-{METRICS}"]["policy"]
    assert metrics["phases"]["hot"]["actions"]["rollover"] == {"max_docs": 2, "min_docs": 1}
    assert metrics["phases"]["delete"]["min_age"] == "1s"
    assert "delete" not in body[f"{layout.prefix}-workflows"]["policy"]["phases"]
    one = json.loads(cli("search", "lifecycle", "export", "--index", "workflows", env=env).stdout)
    assert list(one) == [f"{layout.prefix}-workflows"]

    shown = cli("search", "lifecycle", "show", env=env)
    assert shown.returncode == 0 and "30d" not in shown.stdout.split(METRICS)[1].splitlines()[0]
    sources = {name: p["source"] for name, p in json.loads(cli("search", "lifecycle", "show", "--json", env=env).stdout).items()}
    assert sources[METRICS] == str(policies / "system_metrics.json")
    assert sources["workflows"] == "search/policies/workflows.json"
