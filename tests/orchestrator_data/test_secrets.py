"""The local stack's secrets.json: one password per name whoever asks first, never half written,
and a corrupt file named instead of a traceback."""

from __future__ import annotations

import json
import multiprocessing
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from orchestrator_data.settings import SettingsError
from orchestrator_data.stack.common import Secrets

WORKERS = 6
NAMES_PER_WORKER = 25


def _ask_for_passwords(path: str, worker: int) -> dict[str, str]:
    store = Secrets(Path(path))
    got = {"shared": store.get("shared")}
    for i in range(NAMES_PER_WORKER):
        got[f"worker{worker}-{i}"] = store.get(f"worker{worker}-{i}")
    got["shared-again"] = store.get("shared")
    return got


def _read_until(path: str, stop_file: str) -> int:
    """Read the file over and over while the writers run; returns how many reads saw it."""
    store, seen = Secrets(Path(path)), 0
    while not Path(stop_file).exists():
        if store.read():
            seen += 1
    return seen


def test_concurrent_processes_lose_no_password_and_never_see_half_a_file(tmp_path):
    path, stop = tmp_path / "secrets.json", tmp_path / "stop"
    # forkserver, not fork: by now the test process runs threads (clients, Dagster instances) whose locks a
    # plain fork would copy while held, hanging a child; the fork server is a fresh process to fork from
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=WORKERS + 1, mp_context=context) as pool:
        reader = pool.submit(_read_until, str(path), str(stop))  # raises if a read ever fails
        writers = [pool.submit(_ask_for_passwords, str(path), worker) for worker in range(WORKERS)]
        results = [w.result(timeout=120) for w in writers]
        stop.touch()
        assert reader.result(timeout=60) > 0
    kept = json.loads(path.read_text())
    assert len(kept) == 1 + WORKERS * NAMES_PER_WORKER
    shared = {r["shared"] for r in results} | {r["shared-again"] for r in results}
    assert shared == {kept["shared"]}  # every process was handed the one password that was kept
    for got in results:
        for name, value in got.items():
            assert kept[name.removesuffix("-again")] == value
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "content",
    [b"", b'{"postgres_password": "abc', b"[1, 2]", b'{"postgres_password": 5}', b'{"p": ""}',
     b'{"postgres_password": "caf\xe9"}'],
    ids=["empty", "truncated", "not-an-object", "not-a-string", "empty-password", "not-utf8"],
)
def test_a_corrupt_file_is_named_and_left_as_it_was(tmp_path, content):
    path = tmp_path / "secrets.json"
    path.write_bytes(content)
    with pytest.raises(SettingsError) as caught:
        Secrets(path).get("redis_password")
    assert caught.value.variable == str(path)
    assert "is corrupt" in str(caught.value)
    assert path.read_bytes() == content  # not replaced by a file that forgot the old passwords


def test_an_unreadable_file_is_named(tmp_path):
    path = tmp_path / "secrets.json"
    path.mkdir()
    with pytest.raises(SettingsError, match="cannot be read") as caught:
        Secrets(path).read()
    assert caught.value.variable == str(path)
