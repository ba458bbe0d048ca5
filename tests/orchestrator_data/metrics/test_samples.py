"""Rates from counters: the one helper every collector's counters go through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator_data.metrics.samples import PER_SECOND, Reading, Sample, rates

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def counter(value: float, **labels: str) -> Sample:
    return Sample("elasticsearch", "search_query_total", value, "count", labels, rate_metric="search_rate")


def test_a_second_reading_gives_the_rate_per_second_of_its_series():
    previous = {counter(100, index="workflows").series: Reading(100, T0),
                counter(7, index="executions").series: Reading(7, T0)}
    found = rates([counter(400, index="workflows"), counter(7, index="executions"), counter(1, index="new")],
                  previous, T0 + timedelta(seconds=60))
    assert [(s.metric, s.labels, s.value, s.unit) for s in found] == [
        ("search_rate", {"index": "workflows"}, 5.0, PER_SECOND),
        ("search_rate", {"index": "executions"}, 0.0, PER_SECOND),
    ]  # "new" has no previous reading: no rate


def test_no_rate_when_the_counter_went_down_or_no_time_passed():
    previous = {counter(0, index="workflows").series: Reading(500, T0)}
    assert rates([counter(20, index="workflows")], previous, T0 + timedelta(minutes=5)) == []
    assert rates([counter(900, index="workflows")], previous, T0) == []


def test_gauges_and_other_series_are_not_rated():
    gauge = Sample("redis", "used_memory", 10, "bytes")
    previous = {gauge.series: Reading(5, T0), counter(1, index="a").series: Reading(1, T0)}
    assert rates([gauge, counter(3, index="b")], previous, T0 + timedelta(seconds=1)) == []
