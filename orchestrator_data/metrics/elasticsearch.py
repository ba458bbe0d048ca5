"""Elasticsearch's figures: JVM heap per node, and per index of the layout (through its read alias, so
every backing index counts) documents, store size and the search and indexing counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from elasticsearch import Elasticsearch, NotFoundError

from orchestrator_data.metrics.samples import BYTES, COUNT, RATIO, Sample
from orchestrator_data.search.indices import NAMES, Layout

SERVICE = "elasticsearch"


@dataclass(frozen=True)
class IndexFigures:
    index: str
    documents: int
    store_bytes: int
    query_total: int
    index_total: int


@dataclass
class ElasticsearchFigures:
    samples: list[Sample] = field(default_factory=list)
    indices: list[IndexFigures] = field(default_factory=list)
    missing_indices: list[str] = field(default_factory=list)   # not created yet (search init)


def collect(client: Elasticsearch, layout: Layout, names: tuple[str, ...] = NAMES) -> ElasticsearchFigures:
    """Raises the client's ApiError / TransportError when the cluster cannot answer."""
    figures = ElasticsearchFigures()
    samples = figures.samples
    for node in client.nodes.stats(metric="jvm")["nodes"].values():
        memory = node["jvm"]["mem"]
        labels = {"node": node["name"]}
        used, maximum = memory["heap_used_in_bytes"], memory["heap_max_in_bytes"]
        samples += [Sample(SERVICE, "heap_used", used, BYTES, labels),
                    Sample(SERVICE, "heap_max", maximum, BYTES, labels)]
        if maximum:
            samples.append(Sample(SERVICE, "heap_used_ratio", used / maximum, RATIO, labels))
    for name in names:
        try:
            stats = client.indices.stats(index=layout.read_alias(name), metric="docs,store,search,indexing")["_all"]
        except NotFoundError:
            figures.missing_indices.append(name)
            continue
        primaries, total = stats["primaries"], stats["total"]
        found = IndexFigures(
            name,
            documents=primaries.get("docs", {}).get("count", 0),
            store_bytes=total.get("store", {}).get("size_in_bytes", 0),
            # every copy serves searches; each document is indexed once per primary
            query_total=total.get("search", {}).get("query_total", 0),
            index_total=primaries.get("indexing", {}).get("index_total", 0),
        )
        figures.indices.append(found)
        labels = {"index": name}
        samples += [Sample(SERVICE, "documents", found.documents, COUNT, labels),
                    Sample(SERVICE, "store_size", found.store_bytes, BYTES, labels),
                    Sample(SERVICE, "search_query_total", found.query_total, COUNT, labels, rate_metric="search_rate"),
                    Sample(SERVICE, "indexing_index_total", found.index_total, COUNT, labels,
                           rate_metric="indexing_rate")]
    return figures
