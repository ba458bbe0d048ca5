"""dr_drill_job on the real servers: a scratch Patroni pair of its own (never the configured database), its
primary killed -9 under writers; the figures land as plottable metadata of failover_drill."""

from __future__ import annotations

import re

import dagster as dg
import psutil
import pytest

from assets import keys

pytestmark = pytest.mark.integration


def _drill_processes() -> set[str]:
    """The scratch pairs' directories that processes run in (a benchmark's pair may run beside the test:
    only a new one counts)."""
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        found |= set(re.findall(r"od-drill-[\w]+", " ".join(process.info["cmdline"] or [])))
    return found


def test_the_drill_records_writes_resumed_commits_lost_and_rejoin_and_leaves_nothing_running():
    from definitions import defs

    before = _drill_processes()
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("dr_drill_job").execute_in_process(
        instance=instance, run_config={"ops": {keys.FAILOVER_DRILL: {"config": {"kind": "postgres", "mode": "sync"}}}})
    assert result.success
    [materialization] = result.asset_materializations_for_node(keys.FAILOVER_DRILL)
    metadata = materialization.metadata
    assert metadata["commits_lost"].value == 0
    assert metadata["two_primaries_rounds"].value == 0
    assert 0 < metadata["writes_resumed_s"].value <= 10
    assert metadata["rejoin_s"].value > 0
    assert metadata["commits_acknowledged"].value > 100
    assert metadata["old_primary"].value != metadata["new_primary"].value
    assert _drill_processes() <= before


def test_a_bad_kind_fails_the_run_before_any_pair_starts():
    from definitions import defs

    before = _drill_processes()
    result = defs.resolve_job_def("dr_drill_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        run_config={"ops": {keys.FAILOVER_DRILL: {"config": {"kind": "machine"}}}})
    assert not result.success
    assert _drill_processes() <= before
