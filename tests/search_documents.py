"""Documents for the system_metrics index in tests: the one index written directly, not synced."""

from __future__ import annotations

import time
from datetime import UTC, datetime

METRICS = "system_metrics"


def add_metrics_documents(es, layout, documents: int, refresh: bool = True) -> None:
    for n in range(documents):
        es.index(index=layout.write_alias(METRICS), id=f"{time.monotonic_ns()}-{n}", document={
            "service": "test", "metric": "m", "value": float(n), "unit": "1",
            "sampled_at": datetime.now(UTC).isoformat(), "labels": {}})
    if refresh:
        es.indices.refresh(index=layout.read_alias(METRICS))
