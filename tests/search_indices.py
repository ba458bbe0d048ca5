"""Rolling an index over by hand in tests: production rolls over only through the lifecycle
(orchestrator_data.search.rollover), on its policy's conditions."""

from __future__ import annotations

from elasticsearch import Elasticsearch

from orchestrator_data.search.indices import Layout


def roll_over(client: Elasticsearch, layout: Layout, name: str, conditions: dict | None = None, *,
              dry_run: bool = False) -> dict:
    """Roll the write alias over to a new backing index, which joins the read alias too (the template
    carries no alias, so the rollover request names it)."""
    return client.indices.rollover(alias=layout.write_alias(name), conditions=conditions or None, dry_run=dry_run,
                                   aliases={layout.read_alias(name): {}})
