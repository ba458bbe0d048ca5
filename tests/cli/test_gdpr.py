"""`orchestrator-data gdpr export|erase` as a user runs them, on the session's servers: the documented
exit codes, and nothing changed by a refused request."""

from __future__ import annotations

import json
import stat
import uuid

import pytest
import sqlalchemy as sa

from orchestrator_data.postgres import client
from tests.gdpr_people import seed_people

pytestmark = pytest.mark.integration


@pytest.fixture
def people_db(migrated_url):
    engine = client.create_engine(migrated_url, pool=client.PoolOptions(size=1, max_overflow=0))
    try:
        yield migrated_url, engine, seed_people(engine)
    finally:
        engine.dispose()


def _snapshot(engine) -> tuple:
    with engine.connect() as conn:
        return (conn.execute(sa.text("SELECT count(*), max(id) FROM audit_logs")).one(),
                conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one(),
                conn.execute(sa.text("SELECT count(*) FROM gdpr_erasures")).scalar_one())


def test_export_writes_the_document_to_a_private_file_or_stdout(cli, people_db, prefix, tmp_path):
    url, engine, people = people_db
    env = {"DATABASE_URL": url, "SEARCH_INDEX_PREFIX": prefix}
    target = tmp_path / "export.json"
    written = cli("gdpr", "export", "--user", str(people.person.id), "--output", str(target),
                  "--requested-by", "dpo@test", env=env)
    assert written.returncode == 0, written.stderr
    assert written.stdout == "" and "written to" in written.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    document = json.loads(target.read_text())
    assert document["format_version"] == 1 and document["user"]["email"] == people.person.email
    printed = cli("gdpr", "export", "--user", str(people.person.id), env=env)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["user"]["id"] == str(people.person.id)


def test_bad_requests_are_refused_with_exit_2_and_change_nothing(cli, people_db, prefix, tmp_path):
    url, engine, people = people_db
    env = {"DATABASE_URL": url, "SEARCH_INDEX_PREFIX": prefix}
    before = _snapshot(engine)
    cases = {
        "malformed id": (("gdpr", "erase", "--user", "ada@example.org", "--confirm"), {}, "must be a user id"),
        "unknown user": (("gdpr", "erase", "--user", str(uuid.uuid4()), "--confirm"), {}, "no user"),
        "no --confirm": (("gdpr", "erase", "--user", str(people.person.id)), {}, "without --confirm"),
        "production, no --confirm": (("gdpr", "erase", "--user", str(people.person.id)),
                                     {"ENVIRONMENT": "production"}, "without --confirm"),
        "export of an unknown user": (("gdpr", "export", "--user", str(uuid.uuid4()), "--output",
                                       str(tmp_path / "none.json")), {}, "no user"),
    }
    for case, (args, extra, message) in cases.items():
        result = cli(*args, env={**env, **extra})
        assert result.returncode == 2, (case, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (case, result.stderr)
    assert "ada@example.org" not in cli("gdpr", "erase", "--user", "ada@example.org", env=env).stderr
    assert not (tmp_path / "none.json").exists()
    assert _snapshot(engine) == before


def test_erase_then_erase_again(cli, people_db, prefix):
    url, engine, people = people_db
    env = {"DATABASE_URL": url, "SEARCH_INDEX_PREFIX": prefix}
    first = cli("gdpr", "erase", "--user", str(people.person.id), "--confirm", "--json", env=env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["ok"] and report["postgres"]["users"] == 1 and report["redis"]["sessions"] == 0
    assert people.person.email not in first.stdout + first.stderr
    again = cli("gdpr", "erase", "--user", str(people.person.id), "--confirm", env=env)
    assert again.returncode == 3, again.stderr
    assert "already erased" in again.stderr


def test_an_unwritable_ledger_fails_the_erasure_and_reapply_erases_again(cli, people_db, prefix, tmp_path, stack):
    from orchestrator_data.backups import create_backup
    from tests.orchestrator_data.gdpr.test_ledger import restored_into_new_database

    url, engine, people = people_db
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    env = {"DATABASE_URL": url, "SEARCH_INDEX_PREFIX": prefix, "BACKUP_DIR": str(tmp_path / "backups"),
           "GDPR_LEDGER_FILE": str(blocked)}
    before = _snapshot(engine)
    failed = cli("gdpr", "erase", "--user", str(people.person.id), "--confirm", env=env)
    assert failed.returncode == 1 and "the erasure was not committed" in failed.stderr, failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1 and _snapshot(engine) == before

    older = create_backup(url, tmp_path / "backups")
    env["GDPR_LEDGER_FILE"] = ""  # the default: beside the backups
    assert cli("gdpr", "erase", "--user", str(people.person.id), "--confirm", env=env).returncode == 0
    assert (tmp_path / "backups" / "gdpr-ledger.jsonl").is_file()
    with restored_into_new_database(stack, tmp_path / "backups", older.id) as (restored_url, restored):
        done = cli("gdpr", "reapply", "--database-url", restored_url, "--json", env=env)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["erased"] == [str(people.person.id)] and report["entries"] == 1 and report["ok"]
        again = cli("gdpr", "reapply", "--database-url", restored_url, env=env)
        assert again.returncode == 0 and "0 person(s) present in the database erased again" in again.stdout
    # the live database: the person is gone already, nothing to do
    assert json.loads(cli("gdpr", "reapply", "--json", env=env).stdout)["erased"] == []
    bad = cli("gdpr", "reapply", "--database-url", "mysql://x@y/z", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --database-url has scheme"), bad.stderr


def test_export_to_a_path_it_cannot_write_is_refused_before_the_audit_row(cli, people_db, prefix, tmp_path):
    url, engine, people = people_db
    env = {"DATABASE_URL": url, "SEARCH_INDEX_PREFIX": prefix}
    before = _snapshot(engine)
    (tmp_path / "a-file").write_text("not a folder")
    cases = {  # --output → what the one line says
        "/sys/export.json": "the folder /sys is not writable",  # refused even to root
        str(tmp_path / "missing" / "export.json"): f"the folder {tmp_path / 'missing'} does not exist",
        str(tmp_path / "a-file" / "export.json"): f"{tmp_path / 'a-file'} is not a folder",
        str(tmp_path): f"--output {tmp_path} is a folder",
    }
    for target, message in cases.items():
        result = cli("gdpr", "export", "--user", str(people.person.id), "--output", target, env=env)
        assert result.returncode == 2, (target, result.stderr)
        assert result.stderr.startswith("error: --output ") and message in result.stderr, (target, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == "", (target, result.stderr)
    assert not (tmp_path / "missing").exists()  # no folder created on the way
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no file, no temporary left behind
    assert _snapshot(engine) == before  # no EXPORT audit row
