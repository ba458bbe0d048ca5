"""A sample is one figure of one server at one time; counters become rates against their previous sample.

Every collector returns `Sample`s. A counter (a total that only grows while the server runs:
transactions committed, queries served) carries the name of the rate derived from it; `rates()` is
the one place that turns two readings of a counter into a per-second rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator_data.errors import OperationFailed

# Units as stored in the index's `unit` field.
BYTES = "bytes"
COUNT = "count"
RATIO = "ratio"            # 0..1
MILLISECONDS = "ms"
PER_SECOND = "per_second"

SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]


class MetricsError(OperationFailed):
    """Collecting or writing the samples failed; the message names what and is safe to print."""


@dataclass(frozen=True)
class Sample:
    service: str                     # postgres | redis | elasticsearch
    metric: str
    value: float
    unit: str
    labels: Mapping[str, str] = field(default_factory=dict)
    rate_metric: str | None = None   # a counter: its per-second rate is recorded under this metric

    @property
    def series(self) -> SeriesKey:
        """Identifies the same figure across samples: service, metric and the exact labels."""
        return series_key(self.service, self.metric, self.labels)


def series_key(service: str, metric: str, labels: Mapping[str, str] | None) -> SeriesKey:
    return service, metric, tuple(sorted((str(k), str(v)) for k, v in (labels or {}).items()))


@dataclass(frozen=True)
class Reading:
    """A counter's value at a time, as read back from the index."""

    value: float
    sampled_at: datetime


def rates(samples: Iterable[Sample], previous: Mapping[SeriesKey, Reading], sampled_at: datetime) -> list[Sample]:
    """The per-second rate of each counter since its previous reading. None for a counter seen for the
    first time, and none when it went down (the server restarted, or an index was deleted): the delta
    would be meaningless."""
    derived = []
    for sample in samples:
        if sample.rate_metric is None:
            continue
        before = previous.get(sample.series)
        if before is None:
            continue
        elapsed = (sampled_at - before.sampled_at).total_seconds()
        if elapsed <= 0 or sample.value < before.value:
            continue
        derived.append(Sample(sample.service, sample.rate_metric, (sample.value - before.value) / elapsed,
                              PER_SECOND, sample.labels))
    return derived


def values(samples: Iterable[Sample], service: str, metric: str) -> list[float]:
    return [s.value for s in samples if s.service == service and s.metric == metric]


def total(samples: Iterable[Sample], service: str, metric: str) -> float | None:
    """The sum of a metric over its labels; None when no sample has it."""
    found = values(samples, service, metric)
    return sum(found) if found else None
