"""How old the newest system metrics sample is, against a promise (samples every 5 minutes): the
freshness check of the system_metrics asset reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError

from orchestrator_data.freshness import Freshness, freshness
from orchestrator_data.metrics.samples import MetricsError
from orchestrator_data.search.indices import Layout

INDEX = "system_metrics"


@dataclass(frozen=True)
class SampleTime:
    """The newest sample, as a dated entry (its id is its time)."""
    created_at: datetime

    @property
    def id(self) -> str:
        return self.created_at.isoformat(timespec="seconds")


def newest_sample_at(client: Elasticsearch, layout: Layout) -> datetime | None:
    """The sampled_at of the newest document in the system_metrics index, None when it has none."""
    try:
        client.indices.refresh(index=layout.read_alias(INDEX))  # a sample written a moment ago counts
        response = client.search(index=layout.read_alias(INDEX), size=0,
                                 aggregations={"newest": {"max": {"field": "sampled_at"}}})
    except NotFoundError:
        raise MetricsError(f"the {INDEX} index does not exist (run `orchestrator-data search init` or "
                           f"materialize search_{INDEX}_index)") from None
    except (ApiError, TransportError) as exc:
        raise MetricsError(f"reading the newest sample failed: Elasticsearch: {type(exc).__name__}") from None
    newest = response["aggregations"]["newest"].get("value_as_string")
    return datetime.fromisoformat(newest.replace("Z", "+00:00")) if newest else None


def sample_freshness(client: Elasticsearch, layout: Layout, max_age_hours: float,
                     now: datetime | None = None) -> Freshness:
    newest = newest_sample_at(client, layout)
    return freshness("written", SampleTime(newest) if newest else None, max_age_hours, now,
                     kind="system metrics sample")
