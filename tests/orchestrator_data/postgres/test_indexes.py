"""Each index the schema defines for a product query is the one that query's plan uses — planned as
the product runs it: as orchestrator_app, with a tenant set, so the row-level security policy is
part of the plan, on enough rows (40 organizations, 40 000 workflows, 80 000 executions) for the planner's choice to mean something.

No enable_seqscan=off: after ANALYZE, the planner has to pick the index on its own costs.

Full-text search goes through search_workflows() / search_marketplace_items() (revision 0002):
through row-level security PostgreSQL cannot use a GIN index for `@@` (not leakproof), so those
functions are the product's query. Their inner statement's plan is captured with auto_explain
(loaded by the test's superuser session, reported to the client at NOTICE level)."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from orchestrator_data.postgres import client, migrator
from orchestrator_data.postgres.tenancy import tenant_transaction
from tests.databases import fresh_database

pytestmark = pytest.mark.integration

ORGANIZATIONS = 40
RARE = "quasar"  # a word in a handful of names only

# Tenants' rows are interleaved on disk (ORDER BY the row number first), as when organizations
# write concurrently over time.
LOAD = f"""
SET LOCAL session_replication_role = replica;  -- bulk test data: skip audit triggers and FK checks
SELECT setseed(0.42);  -- random() below is then the same on every run
INSERT INTO organizations (id, slug, name)
    SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(o), 12, '0'))::uuid, 'org-' || o, 'Org ' || o
    FROM generate_series(1, {ORGANIZATIONS}) AS o;
INSERT INTO users (organization_id, email, display_name, created_at)
    SELECT o.id, 'user' || u || '@' || o.slug || '.test', 'User ' || u, now() - u * interval '1 hour'
    FROM generate_series(1, 250) AS u, organizations o ORDER BY u, o.id;
INSERT INTO workflows (organization_id, name, description, engine_type, definition)
    SELECT o.id,
           (ARRAY['summarize', 'classify', 'translate', 'extract', 'route'])[1 + w % 5] || ' pipeline ' || w
               || CASE WHEN w % 97 = 0 THEN ' {RARE}' ELSE '' END,
           'moves documents through models step ' || w,
           (ARRAY['langchain', 'llamaindex', 'autogen', 'crewai', 'semantic_kernel', 'custom'])[1 + w % 6],
           '{{}}'::jsonb
    FROM generate_series(1, 1000) AS w, organizations o ORDER BY w, o.id;
INSERT INTO executions (organization_id, workflow_id, workflow_version, status, created_at)
    SELECT w.organization_id, w.id, 1,
           CASE WHEN random() < 0.05 THEN 'failed' WHEN random() < 0.1 THEN 'running' ELSE 'succeeded' END,
           now() - power(random(), 2) * interval '90 days'  -- recent days are the busiest
    FROM generate_series(1, 10) AS e, (SELECT * FROM workflows WHERE name LIKE 'summarize%') w;
INSERT INTO marketplace_items (organization_id, name, summary, category, engine_type, status, downloads)
    SELECT o.id, 'template ' || m || CASE WHEN m % 101 = 0 THEN ' {RARE}' ELSE '' END,
           'a reusable workflow for documents', 'nlp', 'langchain',
           CASE WHEN m % 3 = 0 THEN 'draft' ELSE 'published' END, m
    FROM generate_series(1, 500) AS m, organizations o ORDER BY m, o.id;
"""

PRODUCT_QUERIES = {
    # the members page: newest members of the organization
    "ix_users_organization_id_created_at":
        "SELECT id, email, display_name FROM users WHERE deleted_at IS NULL ORDER BY created_at DESC LIMIT 50",
    # the engine filter of the workflow list
    "ix_workflows_organization_id_engine_type":
        "SELECT id, name FROM workflows WHERE engine_type = 'crewai' AND deleted_at IS NULL",
    # the runs page: failed in the last 24 hours, newest first
    "ix_executions_organization_id_status_created_at":
        "SELECT id, workflow_id, created_at FROM executions WHERE status = 'failed' "
        "AND created_at >= now() - interval '24 hours' ORDER BY created_at DESC LIMIT 50",
}
SEARCHES = {
    "ix_workflows_search_vector": f"SELECT id, name FROM search_workflows('{RARE}')",
    "ix_marketplace_items_search_vector": f"SELECT id, name FROM search_marketplace_items('{RARE}')",
}


@pytest.fixture(scope="module")
def loaded(stack):
    """One database for the module: the rows take a few seconds to load, and these tests only read."""
    with fresh_database(stack) as url:
        migrator.upgrade(url)
        engine = client.create_engine(url, pool=client.PoolOptions(size=2, max_overflow=0))
        with engine.begin() as conn:
            conn.execute(sa.text(LOAD))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
        organization = uuid.UUID(int=7)
        yield engine, organization
        engine.dispose()


def _index_names(plan: dict) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= _index_names(child)
    return found


def _node_types(plan: dict) -> set[str]:
    found = {plan["Node Type"]}
    for child in plan.get("Plans", []):
        found |= _node_types(child)
    return found


@pytest.mark.parametrize("index", sorted(PRODUCT_QUERIES))
def test_product_query_uses_its_index_through_row_level_security(loaded, index):
    engine, organization = loaded
    with tenant_transaction(engine, organization) as conn:
        rows = conn.execute(sa.text(PRODUCT_QUERIES[index])).all()
        [[explained]] = conn.execute(sa.text("EXPLAIN (FORMAT JSON) " + PRODUCT_QUERIES[index])).all()
    plan = explained[0]["Plan"]
    assert index in _index_names(plan), json.dumps(plan, indent=1)
    assert "Seq Scan" not in _node_types(plan)
    assert rows  # the query returns the tenant's rows


@pytest.mark.parametrize("index", sorted(SEARCHES))
def test_full_text_search_uses_the_gin_index(loaded, index):
    engine, organization = loaded
    plans: list[dict] = []
    with engine.connect() as conn:
        raw = conn.connection.driver_connection

        def capture(diagnostic) -> None:
            message = diagnostic.message_primary or ""
            if "plan:" in message:
                plans.append(json.loads(message.split("plan:", 1)[1]))

        raw.add_notice_handler(capture)
        conn.execute(sa.text("LOAD 'auto_explain'"))
        for setting in ("auto_explain.log_min_duration = 0", "auto_explain.log_nested_statements = on",
                        "auto_explain.log_format = json", "auto_explain.log_level = notice"):
            conn.execute(sa.text(f"SET {setting}"))
        conn.commit()
        with tenant_transaction(conn, organization) as scoped:
            rows = scoped.execute(sa.text(SEARCHES[index])).all()
        raw.remove_notice_handler(capture)
        conn.invalidate()  # do not return a session with auto_explain loaded to the pool
    assert rows and all("quasar" in r.name for r in rows)
    used = set().union(*(_index_names(p["Plan"]) for p in plans))
    assert index in used, json.dumps(plans, indent=1)[:4000]


def test_search_results_stay_in_the_tenant(loaded):
    engine, organization = loaded
    with tenant_transaction(engine, organization) as conn:
        owners = set(conn.execute(sa.text(f"SELECT organization_id FROM search_workflows('{RARE}')")).scalars())
        statuses = set(conn.execute(sa.text(f"SELECT status FROM search_marketplace_items('{RARE}')")).scalars())
        publishers = set(conn.execute(sa.text(
            f"SELECT organization_id FROM search_marketplace_items('{RARE}')")).scalars())
    assert owners == {organization}
    assert statuses == {"published"} and len(publishers) > 1
