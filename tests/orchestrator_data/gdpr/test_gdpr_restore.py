"""Erasure survives a restore: a backup taken before the erasure, restored by the restore check, no
longer shows the person once the live erasure ledger is re-applied; the manifest comparison still
holds (it reads the backup as taken)."""

from __future__ import annotations

import psycopg
import pytest

from orchestrator_data.backups import create_backup, restore, restore_check
from orchestrator_data.gdpr import erase
from orchestrator_data.urls import libpq_url
from tests.gdpr_people import seed_people

pytestmark = pytest.mark.integration


def _restored_text(monkeypatch) -> list[str]:
    """Every row of the scratch database, as text, read just before the check drops it."""
    seen: list[str] = []
    original = restore._drop_database

    def read_then_drop(database_url, name):
        from orchestrator_data import urls

        with psycopg.connect(libpq_url(urls.replace_database(database_url, name))) as conn:
            tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            seen.append("\n".join(str(conn.execute(f'SELECT string_agg(t::text, E\'\\n\') FROM "{t}" t').fetchone()[0])
                                  for t in tables).lower())
        return original(database_url, name)

    monkeypatch.setattr(restore, "_drop_database", read_then_drop)
    return seen


def test_a_backup_from_before_the_erasure_restores_without_the_person(migrated_url, engine, tmp_path, monkeypatch):
    people = seed_people(engine)
    p, c = people.person, people.colleague
    before = create_backup(migrated_url, tmp_path)
    erase.erase_user(engine, None, None, None, str(p.id), erased_by="dpo@test", ledger=None)
    restored = _restored_text(monkeypatch)

    result = restore_check(migrated_url, tmp_path, before.id)

    assert result.ok and result.stage == "done", result.differences
    assert result.erasures_reapplied == 1 and result.tables_compared > 0
    (text,) = restored
    for needle in (p.email, p.name, "Ada Q. Quarrington"):
        assert needle.lower() not in text, needle
    assert c.email.lower() in text and str(p.id) in text  # the colleague stays; the ledger names the id


def test_without_the_function_an_erased_user_in_the_backup_fails_the_check(migrated_url, engine, tmp_path):
    """A backup older than revision 0008 cannot be erased into: the check says so instead of passing."""
    people = seed_people(engine)
    with engine.begin() as conn:  # what such a backup lacks
        conn.exec_driver_sql("DROP FUNCTION gdpr_erase_user(uuid, text, timestamptz)")
    before = create_backup(migrated_url, tmp_path)
    with engine.begin() as conn:  # the live database erased the person (ledger row as the function writes it)
        conn.exec_driver_sql("INSERT INTO gdpr_erasures (user_id, erased_by) VALUES (%s, 'dpo@test')",
                             (people.person.id,))
    result = restore_check(migrated_url, tmp_path, before.id)
    assert not result.ok and result.stage == "erasures"
    assert result.differences == ["erasure ledger: 1 erased user(s) still in the restored database "
                                  "(the backup predates revision 0008: migrate it, then re-apply)"]
