"""The search indices' lifecycle, run by orchestrator-data itself so it works the same on every
cluster (the local node and many real ones have no ILM): rollover and retention, from policies kept
as data files.

Its parts: policies.py (the policy files, and their ILM form), rollover.py, index_retention.py. This
module runs both steps for the asset and the CLI, and tells whether a cluster has native ILM.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.search.index_retention import RetentionReport, retention_index
from orchestrator_data.search.indices import Layout
from orchestrator_data.search.names import NAMES
from orchestrator_data.search.policies import Policy
from orchestrator_data.search.rollover import RolloverDecision, rollover_index


@dataclass
class LifecycleReport:
    rollovers: list[RolloverDecision]
    retention: list[RetentionReport]


def apply(engine: sa.Engine, client: Elasticsearch, layout: Layout, policies: dict[str, Policy],
          names: Iterable[str] = NAMES, *, dry_run: bool = False, now: datetime | None = None) -> LifecycleReport:
    """Rollover, then retention, for each index (an index that just rolled over is not yet old enough
    to be deleted, so the order only matters for what a report shows)."""
    names = list(names)
    rollovers = [rollover_index(engine, client, layout, policies[n], dry_run=dry_run, now=now) for n in names]
    retention = [retention_index(engine, client, layout, policies[n], dry_run=dry_run, now=now) for n in names]
    return LifecycleReport(rollovers, retention)


def ilm_status(client: Elasticsearch) -> str | None:
    """'RUNNING' / 'STOPPING' / 'STOPPED' where the cluster has ILM; None where it has none (the local
    node answers 400 'no handler found': no x-pack). Asked without raising, so its absence is an answer."""
    response = client.options(ignore_status=(400, 401, 403, 404, 405, 410)).perform_request(
        "GET", "/_ilm/status", headers={"accept": "application/json"})
    status = response.meta.status
    if status == 200 and isinstance(response.body, dict):
        return str(response.body.get("operation_mode", "RUNNING"))
    if status in (401, 403):
        return "UNKNOWN (no privilege to read _ilm/status)"
    return None
