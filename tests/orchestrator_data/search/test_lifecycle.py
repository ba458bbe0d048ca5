"""Rollover and retention on the real node, and the policy files' validation."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data import units
from orchestrator_data.search import index_retention, indices, lifecycle, locks, rollover, sources, sync
from orchestrator_data.search import policies as lifecycle_policies
from orchestrator_data.search.policies import InvalidPolicy, Policy, parse_policy
from tests.search_documents import METRICS, add_metrics_documents


# -- policy files ----------------------------------------------------------------------------------
def test_the_package_policies_load_and_every_index_has_one():
    policies = lifecycle_policies.load_policies()
    assert set(policies) == set(indices.NAMES)
    for name, policy in policies.items():
        assert policy.rollover["min_docs"] >= 1, name  # an empty index never rolls
        assert any(c.startswith("max_") for c in policy.rollover), name
    assert policies[METRICS].delete_after_s == 30 * 86400
    assert all(policies[name].delete_after is None for name in sources.SYNCED)


@pytest.mark.parametrize(("body", "field"), [
    ('{"index": "system_metrics", "rollover": {"max_docs": 10', "not valid JSON"),
    ('[]', "expected an object"),
    ('{"index": "system_metrics", "rollover": {"max_docs": 10}, "phases": {}}', "'phases'"),
    ('{"index": "system_metrics", "rollover": {"max_dogs": 10}}', "'rollover.max_dogs'"),
    ('{"index": "system_metrics", "rollover": {"max_age": "30 days"}}', "'rollover.max_age'"),
    ('{"index": "system_metrics", "rollover": {"max_docs": -1}}', "'rollover.max_docs'"),
    ('{"index": "system_metrics", "rollover": {"max_docs": "10"}}', "'rollover.max_docs'"),
    ('{"index": "system_metrics", "rollover": {"max_primary_shard_size": "30 GB"}}', "'rollover.max_primary_shard_size'"),
    ('{"index": "system_metrics", "rollover": {"min_docs": 10}}', "at least one max_*"),
    ('{"index": "system_metrics", "rollover": {"max_docs": 10}, "retention": {"delete_after": "soon"}}',
     "'retention.delete_after'"),
    ('{"index": "system_metrics", "rollover": {"max_docs": 10}, "retention": {"keep": 3}}', "'retention.keep'"),
    ('{"index": "system_metrics", "rollover": {"max_docs": 10}, "retention": "30d"}', "'retention'"),
    ('{"index": "nope", "rollover": {"max_docs": 10}}', "'index'"),
    ('{"index": "workflows", "rollover": {"max_docs": 10}}', "named for 'system_metrics'"),
])
def test_a_bad_policy_is_refused_naming_the_file_and_the_field(body, field):
    with pytest.raises(InvalidPolicy) as caught:
        parse_policy(body, "policies/system_metrics.json", METRICS)
    assert str(caught.value).startswith("policies/system_metrics.json: ")
    assert field in str(caught.value)


def test_retention_is_refused_for_an_index_mirrored_from_postgres():
    with pytest.raises(InvalidPolicy, match="'retention' is not allowed for 'executions'"):
        parse_policy('{"index": "executions", "rollover": {"max_age": "1d"}, "retention": {"delete_after": "90d"}}',
                     "x.json", "executions")


def test_a_policy_directory_replaces_the_package_policy_and_refuses_strangers(tmp_path):
    (tmp_path / "system_metrics.json").write_text(json.dumps(
        {"index": METRICS, "rollover": {"max_docs": 5, "min_docs": 2}, "retention": {"delete_after": "2d"}}))
    policies = lifecycle_policies.load_policies(tmp_path)
    assert policies[METRICS].rollover == {"max_docs": 5, "min_docs": 2}
    assert policies[METRICS].source == str(tmp_path / "system_metrics.json")
    assert policies["workflows"].source == "search/policies/workflows.json"
    (tmp_path / "workflow.json").write_text("{}")
    with pytest.raises(InvalidPolicy, match=r"workflow\.json: no index is named 'workflow'"):
        lifecycle_policies.load_policies(tmp_path)
    with pytest.raises(InvalidPolicy, match="SEARCH_LIFECYCLE_DIR"):
        lifecycle_policies.load_policies(tmp_path / "missing")


def test_thresholds_read_as_elasticsearch_reads_them():
    assert units.parse_time("90m") == 5400
    assert units.parse_time("500ms") == 0.5
    assert units.parse_bytes("30gb") == 30 * 1024 ** 3
    assert units.parse_bytes("1KB") == 1024
    assert units.show("bytes", 1536) == "1.5kb"
    assert units.show("time", 7200) == "2.0h"


def test_the_ilm_export_carries_the_same_conditions_and_retention():
    policy = Policy(METRICS, "x", {"max_age": "1d", "min_docs": 1}, "30d")
    exported = lifecycle_policies.ilm_policy(policy, indices.Layout("od"))["policy"]
    assert exported["phases"]["hot"]["actions"]["rollover"] == {"max_age": "1d", "min_docs": 1}
    assert exported["phases"]["delete"] == {"min_age": "30d", "actions": {"delete": {}}}
    assert exported["_meta"]["rollover_alias"] == "od-system_metrics-write"
    no_retention = lifecycle_policies.ilm_policy(Policy("workflows", "x", {"max_docs": 9}), indices.Layout("od"))
    assert "delete" not in no_retention["policy"]["phases"]


# -- on the node -----------------------------------------------------------------------------------
def _metrics_index(es, layout, documents: int) -> None:
    indices.init_indices(es, layout, (METRICS,))
    add_metrics_documents(es, layout, documents)


def _policy(rollover: dict, delete_after: str | None = None, index: str = METRICS) -> Policy:
    return parse_policy(json.dumps({"index": index, "rollover": rollover,
                                    "retention": {"delete_after": delete_after} if delete_after else None}),
                        "test.json", index)


def _backing(es, layout, name=METRICS) -> list[str]:
    return sorted(es.indices.get_alias(name=layout.read_alias(name)))


@pytest.mark.parametrize("condition", [
    {"max_docs": 3},
    {"max_primary_shard_docs": 3},
    {"max_size": "1b"},
    {"max_primary_shard_size": "1b"},
    {"max_age": "1s"},
])
def test_each_max_condition_rolls_the_index_over_and_reports_its_value(engine, es, layout, condition):
    _metrics_index(es, layout, 3)
    if "max_age" in condition:
        time.sleep(1.2)
    [first] = _backing(es, layout)
    policy = _policy(condition)
    dry = rollover.rollover_index(engine, es, layout, policy, dry_run=True)
    assert dry.action == "would roll over" and _backing(es, layout) == [first]
    [name] = condition
    check = next(c for c in dry.checks if c.condition == name)
    assert check.met and check.measured >= check.limit and check.threshold == str(condition[name])

    done = rollover.rollover_index(engine, es, layout, policy)
    assert done.action == "rolled over"
    assert done.new_index == layout.backing(METRICS, 1, 2)
    assert _backing(es, layout) == [first, done.new_index]
    assert indices.write_index(es, layout, METRICS) == done.new_index
    assert es.count(index=layout.read_alias(METRICS))["count"] == 3


@pytest.mark.parametrize(("condition", "guard"), [
    ({"max_docs": 1, "min_docs": 5}, "min_docs"),
    ({"max_docs": 1, "min_primary_shard_docs": 5}, "min_primary_shard_docs"),
    ({"max_docs": 1, "min_size": "1gb"}, "min_size"),
    ({"max_docs": 1, "min_primary_shard_size": "1gb"}, "min_primary_shard_size"),
    ({"max_docs": 1, "min_age": "1d"}, "min_age"),
])
def test_no_rollover_below_a_min_guard(engine, es, layout, condition, guard):
    _metrics_index(es, layout, 2)
    done = rollover.rollover_index(engine, es, layout, _policy(condition))
    assert done.action == "stays"
    assert guard in done.reason
    assert len(_backing(es, layout)) == 1
    assert not next(c for c in done.checks if c.condition == guard).met


def test_an_empty_index_never_rolls_even_when_old_enough(engine, es, layout):
    _metrics_index(es, layout, 0)
    time.sleep(1.1)
    done = rollover.rollover_index(engine, es, layout, _policy({"max_age": "1s"}))  # min_docs 1 by default
    assert done.action == "stays" and "min_docs" in done.reason
    assert len(_backing(es, layout)) == 1


def test_a_busy_index_is_left_for_the_next_run(engine, es, layout, monkeypatch):
    _metrics_index(es, layout, 3)
    monkeypatch.setattr(locks, "LIFECYCLE_WAIT_S", 0.2)
    with locks.index_lock(engine, layout.read_alias(METRICS)):
        done = rollover.rollover_index(engine, es, layout, _policy({"max_docs": 1}))
        kept = index_retention.retention_index(engine, es, layout, _policy({"max_docs": 1}, "0s"))
    assert done.action == "busy" and kept.action == "busy"
    assert len(_backing(es, layout)) == 1


def test_retention_deletes_what_rolled_over_long_enough_ago_and_never_the_write_index(engine, es, layout):
    _metrics_index(es, layout, 2)
    roll = _policy({"max_docs": 1})
    first = _backing(es, layout)[0]
    rollover.rollover_index(engine, es, layout, roll)
    _metrics_index(es, layout, 2)
    second = indices.write_index(es, layout, METRICS)
    time.sleep(1.5)
    rollover.rollover_index(engine, es, layout, roll)
    third = indices.write_index(es, layout, METRICS)
    assert _backing(es, layout) == [first, second, third]

    # judged at a moment when the first rolled over 10.5 s ago and the second (>= 1.5 s later) less than 10 s ago
    rolled = index_retention.rolled_over_at(es, layout, METRICS, [first, second])
    assert (rolled[second] - rolled[first]).total_seconds() >= 1.4
    moment = rolled[first] + timedelta(seconds=10.5)
    ten_seconds = _policy({"max_docs": 1}, "10s")
    dry = index_retention.retention_index(engine, es, layout, ten_seconds, dry_run=True, now=moment)
    assert dry.to_delete == [first] and dry.deleted == []
    assert {b.index: b.action for b in dry.backing} == {first: "delete", second: "keep", third: "write index"}
    assert _backing(es, layout) == [first, second, third]
    done = index_retention.retention_index(engine, es, layout, ten_seconds, now=moment)
    assert done.deleted == [first]
    assert _backing(es, layout) == [second, third]
    assert es.count(index=layout.read_alias(METRICS))["count"] == 2

    # "0s": everything that rolled over goes, the write index (empty, newest) stays
    everything = index_retention.retention_index(engine, es, layout, _policy({"max_docs": 1}, "0s"))
    assert everything.deleted == [second]
    assert _backing(es, layout) == [third]
    assert indices.write_index(es, layout, METRICS) == third
    again = index_retention.retention_index(engine, es, layout, _policy({"max_docs": 1}, "0s"))
    assert again.deleted == [] and _backing(es, layout) == [third]


def test_rollover_time_comes_from_the_rollover_record(engine, es, layout):
    _metrics_index(es, layout, 2)
    before = datetime.now(UTC) - timedelta(seconds=1)
    rollover.rollover_index(engine, es, layout, _policy({"max_docs": 1}))
    first, second = _backing(es, layout)
    found = index_retention.rolled_over_at(es, layout, METRICS, [first, second])
    assert before <= found[first] <= datetime.now(UTC) + timedelta(seconds=1)
    assert found[second] is None


@pytest.fixture
def seeded(engine, es, layout):
    seed(engine, "testing", SeedPlan(executions=200))
    sync.create_indices(engine, es, layout, ("workflows", "executions"))
    sync.sync(engine, es, layout, ["workflows", "executions"])
    return engine


def _copies(es, layout, name: str) -> dict[str, list[str]]:
    es.indices.refresh(index=layout.read_alias(name))
    hits = es.search(index=layout.read_alias(name), size=10_000, query={"match_all": {}}, source=False)["hits"]["hits"]
    found: dict[str, list[str]] = {}
    for hit in hits:
        found.setdefault(hit["_id"], []).append(hit["_index"])
    return found


def test_a_document_updated_after_its_index_rolled_over_keeps_exactly_one_copy(seeded, es, layout):
    engine = seeded
    policy = Policy("workflows", "test", {"max_docs": 1, "min_docs": 1})
    first = indices.write_index(es, layout, "workflows")
    assert rollover.rollover_index(engine, es, layout, policy).action == "rolled over"
    with engine.begin() as conn:
        changed = conn.execute(sa.text("UPDATE workflows SET name = 'renamed after rollover' WHERE id = "
                                       "(SELECT id FROM workflows WHERE deleted_at IS NULL LIMIT 1) RETURNING id")
                               ).scalar_one()
    report = sync.sync_index(engine, es, layout, "workflows")
    assert report.documents_written >= 1
    copies = _copies(es, layout, "workflows")
    assert copies[str(changed)] == [first]
    assert all(len(where) == 1 for where in copies.values())
    doc = es.get(index=first, id=str(changed))["_source"]
    assert doc["name"] == "renamed after rollover"
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM workflows WHERE deleted_at IS NULL")).scalar_one()
    assert len(copies) == rows


def _count_in_a_loop(es, alias: str, seen: list[int], stop: threading.Event) -> threading.Thread:
    def loop():
        while not stop.is_set():
            seen.append(es.search(index=alias, size=0, track_total_hits=True,
                                  query={"match_all": {}})["hits"]["total"]["value"])
    thread = threading.Thread(target=loop)
    thread.start()
    return thread


def test_searches_through_the_read_alias_miss_nothing_during_rollovers(engine, es, layout):
    """Documents only ever arrive, so a count that went down would be a document a search missed."""
    _metrics_index(es, layout, 1)
    seen: list[int] = []
    stop = threading.Event()
    searcher = _count_in_a_loop(es, layout.read_alias(METRICS), seen, stop)
    policy = _policy({"max_docs": 1})
    written = 1
    try:
        for round_ in range(5):
            for n in range(3):
                es.index(index=layout.write_alias(METRICS), id=f"r{round_}-{n}", refresh=True, document={
                    "service": "test", "metric": "m", "value": 1.0, "unit": "1",
                    "sampled_at": datetime.now(UTC).isoformat(), "labels": {}})
                written += 1
            assert rollover.rollover_index(engine, es, layout, policy).action == "rolled over"
    finally:
        stop.set()
        searcher.join()
    assert len(_backing(es, layout)) == 6
    assert len(seen) > 10
    assert all(later >= earlier for earlier, later in zip(seen, seen[1:])), seen
    assert es.count(index=layout.read_alias(METRICS))["count"] == written


def test_a_synced_index_loses_and_duplicates_nothing_across_a_rollover(seeded, es, layout):
    engine = seeded
    expected = es.count(index=layout.read_alias("executions"))["count"]
    seen: list[int] = []
    stop = threading.Event()
    searcher = _count_in_a_loop(es, layout.read_alias("executions"), seen, stop)
    try:
        policy = Policy("executions", "test", {"max_docs": 1, "min_docs": 1})
        assert rollover.rollover_index(engine, es, layout, policy).action == "rolled over"
        for _ in range(3):
            with engine.begin() as conn:  # updated rows: their documents are rewritten where they are
                conn.execute(sa.text("UPDATE executions SET status = status WHERE id IN "
                                     "(SELECT id FROM executions ORDER BY random() LIMIT 20)"))
            assert sync.sync_index(engine, es, layout, "executions").documents_written >= 1
        # the new write index is empty, so min_docs keeps it from rolling again
        assert rollover.rollover_index(engine, es, layout, policy).action == "stays"
    finally:
        stop.set()
        searcher.join()
    assert len(seen) > 5 and set(seen) == {expected}, sorted(set(seen))
    copies = _copies(es, layout, "executions")
    assert len(copies) == expected and all(len(where) == 1 for where in copies.values())


def test_the_local_node_has_no_ilm_and_says_so_without_failing(es):
    assert lifecycle.ilm_status(es) is None
