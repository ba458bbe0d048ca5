"""Seeding on the real server: deterministic, idempotent, realistic, all-or-nothing, and refused
where it must be."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator_data.postgres import models
from orchestrator_data.postgres.seed import SeedRefused, clean, seed
from orchestrator_data.postgres.seed_data import SeedPlan, build_small_tables, executions_for, seeded_range
from tests.databases import migrated_database

pytestmark = pytest.mark.integration


def _fingerprint(engine) -> dict[str, str]:
    """md5 of every seeded table's content, in primary-key order."""
    prints = {}
    with engine.connect() as conn:
        for name in models.LOAD_ORDER:
            key = "user_id, role_id" if name == "role_memberships" else "id"
            columns = [c.name for c in models.metadata.tables[name].columns if c.name not in ("search_vector",)]
            prints[name] = conn.execute(sa.text(
                f"SELECT md5(string_agg(row({', '.join(columns)})::text, '|' ORDER BY {key})) FROM \"{name}\""
            )).scalar_one()
    return prints


def test_seed_is_deterministic_and_idempotent(seeded_db, stack):
    plan = SeedPlan(executions=3_000)
    first = seed(seeded_db, "testing", plan)
    assert first.inserted["executions"] == 3_000
    assert first.inserted["organizations"] >= 5
    assert all(first.inserted[t] > 0 for t in models.LOAD_ORDER)
    before = _fingerprint(seeded_db)

    again = seed(seeded_db, "testing", plan)
    assert again.total_inserted == 0
    assert _fingerprint(seeded_db) == before

    # the same plan on another database gives the very same rows
    with migrated_database(stack, prefix="seed") as (_, other):
        seed(other, "testing", plan)
        assert _fingerprint(other) == before


def test_seed_data_is_realistic(seeded_db):
    report = seed(seeded_db, "development", SeedPlan(executions=5_000))
    assert len(report.rows_per_organization) >= 5
    assert all(per["users"] >= 8 and per["workflows"] >= 5 for per in report.rows_per_organization.values())
    with seeded_db.connect() as conn:
        mix = dict(conn.execute(sa.text("SELECT status, count(*) FROM executions GROUP BY status")).all())
        span_days = conn.execute(sa.text(
            "SELECT extract(epoch FROM max(created_at) - min(created_at)) / 86400 FROM executions")).scalar_one()
        bad_versions = conn.execute(sa.text(
            "SELECT count(*) FROM executions e JOIN workflows w ON w.id = e.workflow_id "
            "WHERE e.workflow_version > w.current_version OR e.organization_id <> w.organization_id")).scalar_one()
        version_gaps = conn.execute(sa.text(
            "SELECT count(*) FROM workflows w WHERE w.current_version <> "
            "(SELECT count(*) FROM workflow_versions v WHERE v.workflow_id = w.id)")).scalar_one()
        failed_without_error = conn.execute(sa.text(
            "SELECT count(*) FROM executions WHERE status = 'failed' AND error IS NULL")).scalar_one()
        finished_costs = conn.execute(sa.text(
            "SELECT count(*) FILTER (WHERE cost_usd > 0), count(*) FROM executions WHERE status = 'succeeded'")).one()
    assert 0.80 < mix["succeeded"] / 5_000 < 0.92
    assert 0.05 < mix["failed"] / 5_000 < 0.13
    assert {"cancelled", "timed_out"} <= set(mix)
    assert span_days > 150  # months of history
    assert bad_versions == 0 and version_gaps == 0 and failed_without_error == 0
    assert finished_costs[0] == finished_costs[1]


def test_another_scale_replaces_the_seeded_executions(seeded_db):
    seed(seeded_db, "testing", SeedPlan(executions=500))
    report = seed(seeded_db, "testing", SeedPlan(executions=800))
    assert report.deleted["executions"] == 500 and report.inserted["executions"] == 800
    with seeded_db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM executions")).scalar_one() == 800


def test_seed_writes_no_audit_rows_and_leaves_triggers_enabled(seeded_db):
    """No row-by-row audit trail for synthetic rows; instead one REWRITE mark per audited table, in the
    seed's own transaction, from which the search sync knows to rebuild."""
    seed(seeded_db, "testing", SeedPlan(executions=200))
    with seeded_db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_logs WHERE action <> 'REWRITE'")).scalar_one() == 0
        marks = conn.execute(sa.text("SELECT table_name, new_values->>'reason', count(DISTINCT transaction_id) "
                                     "FROM audit_logs WHERE action = 'REWRITE' GROUP BY 1, 2")).all()
        assert sorted(table for table, _, _ in marks) == sorted(models.AUDITED_TABLES)
        assert {(reason, transactions) for _, reason, transactions in marks} == {("seed run (testing)", 1)}
        disabled = conn.execute(sa.text(
            "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'D'")).scalar_one()
    assert disabled == 0


def test_failed_seed_leaves_nothing(seeded_db, monkeypatch):
    from orchestrator_data.postgres import seed as seed_module

    def broken(plan, rows):
        yield from list(executions_for(plan, rows))[:10]
        raise RuntimeError("generator broke mid-way")

    monkeypatch.setattr(seed_module, "executions_for", broken)
    with pytest.raises(RuntimeError):
        seed(seeded_db, "testing", SeedPlan(executions=100))
    with seeded_db.connect() as conn:
        for name in models.LOAD_ORDER:
            assert conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one() == 0, name


def test_clean_removes_only_seeded_organizations(seeded_db):
    seed(seeded_db, "testing", SeedPlan(executions=300))
    with seeded_db.begin() as conn:
        conn.execute(sa.text("INSERT INTO organizations (slug, name) VALUES ('real-customer', 'Real Customer')"))
    report = clean(seeded_db, "testing", confirm=True)
    assert report.deleted["executions"] == 300 and report.deleted["organizations"] >= 5
    with seeded_db.connect() as conn:
        assert conn.execute(sa.text("SELECT slug FROM organizations")).scalars().all() == ["real-customer"]
        assert conn.execute(sa.text("SELECT count(*) FROM executions")).scalar_one() == 0


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_seed_refused_outside_development_and_testing(seeded_db, environment):
    with pytest.raises(SeedRefused, match=f"refused in the '{environment}' environment"):
        seed(seeded_db, environment, SeedPlan(executions=10))
    with pytest.raises(SeedRefused):
        clean(seeded_db, environment, confirm=True)


def test_clean_without_confirm_is_refused(seeded_db):
    with pytest.raises(SeedRefused, match="--confirm"):
        clean(seeded_db, "testing", confirm=False)


def test_generator_is_lazy_and_ids_are_in_the_seeded_range():
    plan = SeedPlan(executions=10_000_000)
    rows = build_small_tables(plan)
    iterator = executions_for(plan, rows)
    first = next(iterator)  # a 10M plan yields at once: nothing is built up front
    low, high = seeded_range("executions")
    assert low <= first[0] <= high
