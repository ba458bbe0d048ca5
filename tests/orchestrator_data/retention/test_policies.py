"""Retention policies as data: the package's load, a directory replaces them per table, and a malformed
file is refused naming the file and the field."""

from __future__ import annotations

import json

import pytest

from orchestrator_data.retention.policies import TABLES, InvalidRetentionPolicy, load_policies


def test_the_package_policies_load_in_purge_order():
    policies = load_policies()
    assert list(policies) == list(TABLES) == ["workflows", "marketplace_items", "executions", "audit_logs"]
    assert policies["executions"].delete_after_s == 90 * 86400
    assert all(p.source == f"retention/policies/{t}.json" for t, p in policies.items())


def test_a_directory_replaces_one_table_and_keeps_the_others(tmp_path):
    (tmp_path / "executions.json").write_text(json.dumps({"table": "executions", "delete_after": None}))
    policies = load_policies(tmp_path)
    assert policies["executions"].delete_after is None and policies["executions"].source == str(tmp_path / "executions.json")
    assert policies["audit_logs"].delete_after == "365d"


@pytest.mark.parametrize(("body", "field"), [
    ({"table": "executions", "delete_after": "90 days"}, "'delete_after'"),
    ({"table": "executions", "delete_after": "2h"}, "'delete_after' must be at least 1d"),
    ({"table": "executions"}, "'delete_after' is required"),
    ({"table": "executions", "delete_after": "90d", "batch_size": 0}, "'batch_size'"),
    ({"table": "executions", "delete_after": "90d", "batch_size": True}, "'batch_size'"),
    ({"table": "executions", "delete_after": "90d", "keep": 1}, "unknown field 'keep'"),
    ({"table": "workflows", "delete_after": "90d"}, "named for 'executions'"),
    ([1, 2], "expected an object"),
])
def test_a_malformed_file_is_refused_naming_file_and_field(tmp_path, body, field):
    path = tmp_path / "executions.json"
    path.write_text(json.dumps(body))
    with pytest.raises(InvalidRetentionPolicy) as refused:
        load_policies(tmp_path)
    assert str(path) in str(refused.value) and field in str(refused.value)


def test_a_file_for_no_table_and_a_missing_directory_are_refused(tmp_path):
    (tmp_path / "sessions.json").write_text("{}")
    with pytest.raises(InvalidRetentionPolicy, match="sessions.json: no table"):
        load_policies(tmp_path)
    with pytest.raises(InvalidRetentionPolicy, match="RETENTION_POLICY_DIR"):
        load_policies(tmp_path / "absent")
