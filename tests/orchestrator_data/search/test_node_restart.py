"""The node stops in the middle of a full sync: the run fails, the watermark stays where it was, and
the rerun, once the node is back on the same data, ends with exact counts and no duplicate."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import errors, indices, reconcile, sources, sync, watermarks
from orchestrator_data.search.indices import Layout
from orchestrator_data.stack.common import free_port
from orchestrator_data.stack.elasticsearch import ElasticsearchService
from tests.conftest import ES_TEST_JAVA_OPTS

pytestmark = pytest.mark.integration


@pytest.fixture
def own_node(tmp_path):
    """A node of this test's own (the session's node serves every other test)."""
    node = ElasticsearchService(tmp_path, free_port(), heap="256m", java_options=ES_TEST_JAVA_OPTS)
    node.start()
    yield node
    node.stop()


def test_a_node_stopped_mid_sync_keeps_the_watermark_and_the_rerun_is_exact(engine, own_node):
    seed(engine, "testing", SeedPlan(executions=4000))
    client = Elasticsearch(own_node.url(), max_retries=1, request_timeout=5, retry_on_timeout=False)
    layout = Layout("restart")
    indices.init_indices(client, layout, ("executions",))
    sync.sync_index(engine, client, layout, "executions")  # a first full sync: there is a watermark
    before = watermarks.load_state(engine, layout.read_alias("executions")).watermark
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE executions SET status = 'cancelled' WHERE id IN "
                             "(SELECT id FROM executions ORDER BY id LIMIT 2500)"))

    def stop_after_the_first_batch(report):
        if report.rows_read >= sources.BATCH and own_node.is_running():
            own_node.stop()

    with pytest.raises(errors.SyncError, match="watermark stays"):
        sync.sync_index(engine, client, layout, "executions", on_progress=stop_after_the_first_batch)
    assert watermarks.load_state(engine, layout.read_alias("executions")).watermark == before

    own_node.start()  # the same data directory
    client.cluster.health(index=layout.read_alias("executions"), wait_for_status="green", timeout="30s")
    rerun = sync.sync_index(engine, client, layout, "executions")
    assert rerun.mode == "incremental" and rerun.documents_written + rerun.stale_skipped == 2500
    assert watermarks.load_state(engine, layout.read_alias("executions")).watermark > before
    client.indices.refresh(index=layout.read_alias("executions"))
    assert client.count(index=layout.read_alias("executions"))["count"] == 4000
    cancelled = client.count(index=layout.read_alias("executions"), query={"term": {"status": "cancelled"}})
    with engine.connect() as conn:
        assert cancelled["count"] == conn.execute(sa.text(
            "SELECT count(*) FROM executions WHERE status = 'cancelled'")).scalar_one()
    assert reconcile.reconcile(engine, client, layout, "executions", sample=4000).ok
    client.close()
