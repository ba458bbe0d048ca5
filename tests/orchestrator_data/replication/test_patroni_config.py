"""The Patroni configuration generated for the local HA pair: what Patroni itself accepts, the timings
within its bounds, the replication modes, and a file that keeps its passwords to itself."""

from __future__ import annotations

import os
import stat

import pytest
import yaml

from orchestrator_data.replication.patroni_config import (
    TIMINGS,
    MemberSpec,
    Passwords,
    dynamic_config,
    member_config,
)
from orchestrator_data.stack.patroni import PatroniMember, server_owner
from orchestrator_data.stack.postgres import bin_dir

PASSWORDS = Passwords(superuser="su-secret-1", replication="repl-secret-2", api="api-secret-3")


def _config(tmp_path, mode="sync"):
    spec = MemberSpec("pg1", tmp_path / "pg1", 5432, 8008)
    return spec, member_config(spec, etcd_hosts="127.0.0.1:2379", passwords=PASSWORDS, bin_dir=bin_dir(), mode=mode)


def test_patroni_s_own_validator_objects_only_to_loopback_addresses_and_an_etcd_not_running(tmp_path):
    from patroni.validator import populate_validate_params, schema

    populate_validate_params(ignore_listen_port=True)
    _, config = _config(tmp_path)
    problems = schema(config)
    # a pair on one machine talks over loopback, which Patroni warns about for real clusters
    unexpected = [p for p in problems if "must not contain" not in p and "is not reachable" not in p]
    assert unexpected == []
    assert any("etcd3.hosts" in p for p in problems)  # the validator did run over the whole document


def test_timings_are_within_patroni_s_bounds_and_fail_a_crashed_primary_over_at_once():
    # patroni/config.py _validate_and_adjust_timeouts: below these Patroni silently raises them
    assert TIMINGS["ttl"] >= 20 and TIMINGS["loop_wait"] >= 1 and TIMINGS["retry_timeout"] >= 3
    assert TIMINGS["loop_wait"] + 2 * TIMINGS["retry_timeout"] <= TIMINGS["ttl"]
    assert TIMINGS["primary_start_timeout"] == 0


@pytest.mark.parametrize(("mode", "synchronous", "strict"),
                         [("async", False, False), ("sync", True, False), ("strict", True, True)])
def test_replication_mode_maps_to_patroni_s_synchronous_settings(mode, synchronous, strict):
    config = dynamic_config(mode)
    assert (config["synchronous_mode"], config["synchronous_mode_strict"]) == (synchronous, strict)
    assert config["postgresql"]["use_pg_rewind"] is True and config["postgresql"]["use_slots"] is True


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="quorum"):
        dynamic_config("quorum")


def test_the_member_file_is_written_whole_mode_0600_for_the_server_s_user_and_passwords_stay_out_of_reprs(tmp_path):
    spec, config = _config(tmp_path)
    member = PatroniMember(spec)
    member.prepare()
    member.write_config(config)
    info = spec.config_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    owner = server_owner()
    assert (info.st_uid, info.st_gid) == (owner if owner else (os.getuid(), os.getgid()))
    assert yaml.safe_load(spec.config_file.read_text()) == config
    assert [p.name for p in spec.root.iterdir() if p.name.endswith(".tmp")] == []
    for secret in ("su-secret-1", "repl-secret-2", "api-secret-3"):
        assert secret not in repr(PASSWORDS)
