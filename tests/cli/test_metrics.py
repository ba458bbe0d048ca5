"""`orchestrator-data metrics collect` through the installed console script, on the real servers."""

from __future__ import annotations

import json

import pytest

from orchestrator_data.stack.common import free_port

pytestmark = pytest.mark.integration


def _secrets(stack) -> list[str]:
    return list(json.loads((stack.root / "secrets.json").read_text()).values())


def test_collect_writes_samples_and_exits_by_what_happened(cli, stack, migrated_url, prefix):
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix}
    missing = cli("metrics", "collect", env=env)
    assert missing.returncode == 1 and "the system_metrics index does not exist" in missing.stderr

    assert cli("search", "init", "--index", "system_metrics", env=env).returncode == 0
    done = cli("metrics", "collect", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["errors"] == {} and report["written"] == len(report["samples"]) > 0
    assert {s["service"] for s in report["samples"]} == {"postgres", "redis", "elasticsearch"}
    assert report["headline"]["pg_connections"] >= 1
    human = cli("metrics", "collect", env=env)
    assert human.returncode == 0 and "redis_used_memory_bytes" in human.stdout

    down = cli("metrics", "collect", env={**env, "REDIS_URL": f"redis://:HiddenPw77@127.0.0.1:{free_port()}/0"})
    assert down.returncode == 1 and "redis: no samples" in down.stderr
    assert "samples written" in down.stdout
    for result in (missing, done, human, down):
        for secret in [*_secrets(stack), "HiddenPw77"]:
            assert secret not in result.stdout + result.stderr
    assert cli("metrics", "collect", env={**env, "SEARCH_SHARDS": "zero"}).returncode == 2
