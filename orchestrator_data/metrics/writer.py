"""Writing samples into the system_metrics index, and reading counters back from it.

- **Through the write alias**, under the index's lock (`search.locks.index_lock`): a snapshot that
  holds the lock while it counts documents sees no write in between.
- **No duplicates.** A document's id is derived from sampled_at, service, metric and labels. Ids
  already somewhere behind the read alias (a retried run, also across a rollover) are skipped, the
  rest are created (`op_type: create`); a 409 means another writer got there first, which is fine.
- **No silent partial write.** Any other failed document fails the write, naming how many and why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from elasticsearch import Elasticsearch, NotFoundError, helpers

from orchestrator_data.metrics.samples import MetricsError, Reading, Sample, SeriesKey, series_key
from orchestrator_data.redaction import describe_error
from orchestrator_data.search.errors import elasticsearch_errors
from orchestrator_data.search.indices import Layout
from orchestrator_data.search.locks import index_lock

INDEX = "system_metrics"
LOCK_WAIT_S = 60.0
# A counter's previous reading must be at most this old to give a rate.
RATE_LOOKBACK = timedelta(hours=6)
MAX_READINGS = 10_000
ID_BATCH = 1_000


@dataclass(frozen=True)
class WriteReport:
    written: int
    already_present: int         # same id found: a rerun of the same sampled_at


def stored_time(sampled_at: datetime) -> datetime:
    """The time as the index keeps it: UTC, to the millisecond (the precision of an Elasticsearch date),
    so a rate computed now and one computed from what is read back agree."""
    if sampled_at.tzinfo is None:
        raise MetricsError("sampled_at must carry a time zone")
    return sampled_at.astimezone(UTC).replace(microsecond=sampled_at.microsecond // 1000 * 1000)


def sampled_at_text(sampled_at: datetime) -> str:
    return stored_time(sampled_at).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def document_id(sample: Sample, sampled_at: datetime) -> str:
    key = json.dumps([sampled_at_text(sampled_at), *sample.series], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def document(sample: Sample, sampled_at: datetime) -> dict:
    # no organization_id: these figures are platform-wide
    return {"service": sample.service, "metric": sample.metric, "value": float(sample.value), "unit": sample.unit,
            "sampled_at": sampled_at_text(sampled_at), "labels": {k: str(v) for k, v in sample.labels.items()}}


@contextmanager
def _elasticsearch(what: str) -> Iterator[None]:
    with elasticsearch_errors(what, MetricsError, consequence=""):
        try:
            yield
        except NotFoundError as exc:  # the one error with a remedy to name
            raise MetricsError(f"{what}: the {INDEX} index does not exist (run `orchestrator-data search init` "
                               f"or materialize search_{INDEX}_index)") from exc


def previous_readings(client: Elasticsearch, layout: Layout, counters: Iterable[Sample],
                      sampled_at: datetime, lookback: timedelta = RATE_LOOKBACK) -> dict[SeriesKey, Reading]:
    """Each counter's latest reading before `sampled_at` (within `lookback`), from the index itself."""
    metrics = sorted({s.metric for s in counters})
    if not metrics:
        return {}
    with _elasticsearch("read the previous counters"):
        found = client.search(
            index=layout.read_alias(INDEX), size=MAX_READINGS, sort=[{"sampled_at": "desc"}],
            source=["service", "metric", "value", "labels", "sampled_at"],
            query={"bool": {"filter": [
                {"terms": {"metric": metrics}},
                {"range": {"sampled_at": {"gte": sampled_at_text(sampled_at - lookback),
                                          "lt": sampled_at_text(sampled_at)}}}]}})
    readings: dict[SeriesKey, Reading] = {}
    for hit in found["hits"]["hits"]:
        doc = hit["_source"]
        key = series_key(doc["service"], doc["metric"], doc.get("labels"))
        if key not in readings:   # newest first
            readings[key] = Reading(doc["value"], datetime.fromisoformat(doc["sampled_at"]))
    return readings


def _existing_ids(client: Elasticsearch, layout: Layout, ids: list[str]) -> set[str]:
    present: set[str] = set()
    for start in range(0, len(ids), ID_BATCH):
        batch = ids[start:start + ID_BATCH]
        found = client.search(index=layout.read_alias(INDEX), size=len(batch), source=False,
                              query={"ids": {"values": batch}})
        present |= {hit["_id"] for hit in found["hits"]["hits"]}
    return present


def write_samples(client: Elasticsearch, engine: sa.Engine, layout: Layout, samples: list[Sample],
                  sampled_at: datetime, lock_wait_s: float = LOCK_WAIT_S) -> WriteReport:
    """Index the samples at `sampled_at`; idempotent for the same sampled_at. Raises MetricsError."""
    documents = {document_id(s, sampled_at): document(s, sampled_at) for s in samples}
    try:
        with index_lock(engine, layout.read_alias(INDEX), wait_s=lock_wait_s), _elasticsearch("write the samples"):
            present = _existing_ids(client, layout, list(documents))
            actions = [{"_op_type": "create", "_index": layout.write_alias(INDEX), "_id": doc_id, "_source": body}
                       for doc_id, body in documents.items() if doc_id not in present]
            written, errors = (helpers.bulk(client, actions, raise_on_error=False, max_retries=3) if actions
                               else (0, []))
    except sa.exc.SQLAlchemyError as exc:
        # the lock lives in PostgreSQL: without it nothing is written
        raise MetricsError(f"take the {INDEX} lock: PostgreSQL: {describe_error(exc)}") from exc
    raced = [e for e in errors if e.get("create", {}).get("status") == 409]
    failed = [e for e in errors if e.get("create", {}).get("status") != 409]
    if failed:
        reasons = "; ".join(sorted({str(e.get("create", {}).get("error", {}).get("reason", e))[:200]
                                    for e in failed})[:3])
        raise MetricsError(f"{len(failed)} of {len(actions)} samples were not written to {INDEX}: {reasons}")
    return WriteReport(written=written, already_present=len(present) + len(raced))
