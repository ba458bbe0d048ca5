"""The erasure ledger outside the database: written in the erasure's transaction (or the erasure
fails with nothing committed), and re-applied to a database that went back in time."""

from __future__ import annotations

import json
import stat
import uuid
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from orchestrator_data.backups import create_backup, restore, restore_check
from orchestrator_data.gdpr import erase
from orchestrator_data.gdpr.ledger import ErasureLedger, LedgerEntry, LedgerError
from orchestrator_data.gdpr.reapply import reapply_erasures
from orchestrator_data.postgres import client
from tests.databases import fresh_database
from tests.gdpr_people import seed_people

pytestmark = pytest.mark.integration


def _state(engine, user: uuid.UUID) -> tuple:
    with engine.connect() as conn:
        return (conn.execute(sa.text("SELECT count(*) FROM users WHERE id = :u"), {"u": user}).scalar_one(),
                conn.execute(sa.text("SELECT count(*) FROM gdpr_erasures")).scalar_one(),
                conn.execute(sa.text("SELECT count(*) FROM audit_logs WHERE action = 'ERASURE'")).scalar_one())


@contextmanager
def restored_into_new_database(stack, backup_dir, backup_id):
    """The dump restored into a new database, as an operator restores an older backup."""
    entry = restore.get_backup(backup_dir, backup_id)
    with fresh_database(stack, prefix="od_ledger_restore") as url:
        assert restore._pg_restore(url, entry.dump_path, 0) is None
        engine = client.create_engine(url, pool=client.PoolOptions(size=1, max_overflow=0))
        try:
            yield url, engine
        finally:
            engine.dispose()


def test_the_erasure_writes_a_private_line_with_ids_only(engine, tmp_path):
    people = seed_people(engine)
    p = people.person
    ledger = ErasureLedger(tmp_path / "backups" / "gdpr-ledger.jsonl")
    report = erase.erase_user(engine, None, None, None, str(p.id), erased_by="dpo@test", ledger=ledger)
    assert report.ok and report.ledger_file == str(ledger.path)
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600
    (line,) = ledger.path.read_text().splitlines()
    assert set(json.loads(line)) == {"v", "user_id", "organization_id", "erased_at", "request_id"}
    (entry,) = ledger.read().entries
    with engine.connect() as conn:
        erased_at = conn.execute(sa.text("SELECT erased_at FROM gdpr_erasures WHERE user_id = :u"),
                                 {"u": p.id}).scalar_one()
    assert (entry.user_id, entry.organization_id, entry.erased_at, entry.request_id) == (
        p.id, p.organization_id, erased_at, report.request_id)
    for needle in (p.email, p.name, "dpo@test"):
        assert needle.lower() not in line.lower()
    # an erasure recorded before the file existed (or a file restored from an old copy) is added on a re-run
    ledger.path.unlink()
    again = erase.erase_user(engine, None, None, None, str(p.id), erased_by="dpo@test", ledger=ledger)
    assert again.already_erased
    (entry,) = ledger.read().entries
    assert (entry.user_id, entry.organization_id, entry.erased_at) == (p.id, p.organization_id, erased_at)


def test_an_unwritable_ledger_fails_the_erasure_with_nothing_committed(engine, tmp_path):
    people = seed_people(engine)
    before = _state(engine, people.person.id)
    assert before[0] == 1
    blocked = tmp_path / "ledger-is-a-folder"
    blocked.mkdir()
    with pytest.raises(LedgerError, match=rf"{blocked} cannot be written .*the erasure was not committed"):
        erase.erase_user(engine, None, None, None, str(people.person.id), erased_by="dpo@test",
                         ledger=ErasureLedger(blocked))
    assert _state(engine, people.person.id) == before  # the user, no ledger row, no ERASURE audit row
    # below a file: the folder cannot even be made
    below_a_file = tmp_path / "plain-file"
    below_a_file.write_text("")
    with pytest.raises(LedgerError):
        erase.erase_user(engine, None, None, None, str(people.person.id), erased_by="dpo@test",
                         ledger=ErasureLedger(below_a_file / "ledger.jsonl"))
    assert _state(engine, people.person.id) == before


def test_a_torn_last_line_does_not_swallow_the_next_entry(tmp_path):
    ledger = ErasureLedger(tmp_path / "ledger.jsonl")
    ledger.path.write_text('{"v": 1, "user_id": "1234')  # a crash mid-line, before its fsync returned
    entry = LedgerEntry(uuid.uuid4(), None, __import__("datetime").datetime.now().astimezone(), "r1")
    ledger.append(entry)
    read = ledger.read()
    assert read.entries == [entry] and read.unreadable_lines == [1]


def test_restore_an_older_dump_then_reapply_and_the_person_is_gone(migrated_url, engine, tmp_path, stack):
    people = seed_people(engine)
    p, c = people.person, people.colleague
    backup_dir = tmp_path / "backups"
    older = create_backup(migrated_url, backup_dir)
    settings = SimpleNamespace(gdpr_ledger_path=backup_dir / "gdpr-ledger.jsonl")
    erase.erase_user(engine, None, None, None, str(p.id), erased_by="dpo@test",
                     ledger=ErasureLedger(settings.gdpr_ledger_path))

    with restored_into_new_database(stack, backup_dir, older.id) as (url, restored):
        assert _state(restored, p.id)[:2] == (1, 0)  # the older dump brought the person back
        report = reapply_erasures(settings, url)
        assert report.ok and report.entries == 1 and report.erased == [str(p.id)]
        assert report.rows["users"] == 1
        assert _state(restored, p.id) == (0, 1, 1)
        with restored.connect() as conn:
            trail = conn.execute(sa.text("SELECT string_agg(coalesce(old_values::text, '') || "
                                         "coalesce(new_values::text, ''), ' ') FROM audit_logs")).scalar_one()
            colleague = conn.execute(sa.text("SELECT count(*) FROM users WHERE id = :u"), {"u": c.id}).scalar_one()
        assert p.email.lower() not in trail.lower() and colleague == 1
        # idempotent: nobody left to erase, nothing changed
        again = reapply_erasures(settings, url)
        assert again.erased == [] and again.entries == 1 and _state(restored, p.id) == (0, 1, 1)

    # the restore check re-applies the file too: the live database itself went back in time (its own
    # ledger row is gone), the file still knows, and the check proves the person stays erased
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM gdpr_erasures"))
    checked = restore_check(migrated_url, backup_dir, older.id, erasure_ledger=settings.gdpr_ledger_path)
    assert checked.ok and checked.stage == "done" and checked.erasures_reapplied == 1, checked.differences


def test_reapply_without_a_ledger_file_erases_nobody(migrated_url, tmp_path):
    settings = SimpleNamespace(gdpr_ledger_path=tmp_path / "none.jsonl")
    report = reapply_erasures(settings, migrated_url)
    assert not report.ledger_exists and report.entries == 0 and report.erased == []
