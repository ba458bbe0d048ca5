"""docs/runbook.md has a section for every job, check and sensor, and their links point at it."""

from __future__ import annotations

import re

import dagster as dg

from orchestrator_data import runbook
from tests.conftest import PROJECT_ROOT


def _anchors() -> set[str]:
    text = (PROJECT_ROOT / runbook.PATH).read_text(encoding="utf-8")
    return {runbook.anchor(heading) for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def _linked(description: str) -> str:
    match = re.search(rf"Runbook: {re.escape(runbook.PATH)}#([\w\-]+)", description or "")
    assert match, f"no runbook link in: {description!r}"
    return match.group(1)


def test_every_job_check_and_sensor_has_its_section():
    from definitions import defs

    anchors = _anchors()
    jobs = [job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    assert [job for job in jobs if runbook.anchor(job) not in anchors] == []
    graph = defs.resolve_asset_graph()
    for key in graph.asset_check_keys:
        description = graph.get_check_spec(key).description
        assert _linked(description) in anchors, key.name
    for sensor in defs.sensors:
        assert _linked(sensor.description) in anchors, sensor.name
    # the stale-copy alerts' sections: "stale <promise> <kind>"
    for section in ("stale verified backup", "stale restore-checked backup", "stale successful search snapshot",
                    "stale restore-checked search snapshot"):
        assert runbook.anchor(section) in anchors, section


def _url_anchor(metadata) -> str:
    """The anchor of a definition's `runbook` URL metadata (clickable in the UI)."""
    value = metadata.get("runbook")
    assert isinstance(value, dg.UrlMetadataValue), metadata
    base, _, anchor = value.url.partition("#")
    assert base == runbook.PATH  # RUNBOOK_URL unset in the test session
    return anchor


def test_jobs_schedules_sensors_and_checks_link_their_section_as_a_url():
    from definitions import defs

    anchors = _anchors()
    for job in defs.resolve_all_job_defs():
        if not job.name.startswith("__"):
            assert _url_anchor(job.metadata) == runbook.anchor(job.name), job.name
    for schedule in defs.schedules:  # a schedule's runs are its job's: the job's section
        assert _url_anchor(schedule.metadata) == runbook.anchor(schedule.job_name), schedule.name
    for sensor in defs.sensors:
        assert _url_anchor(sensor.metadata) == runbook.anchor(sensor.name), sensor.name
    graph = defs.resolve_asset_graph()
    for key in graph.asset_check_keys:
        spec = graph.get_check_spec(key)
        # the same section as the description's text link
        assert _url_anchor(spec.metadata) == _linked(spec.description) in anchors, key


def test_the_url_is_under_runbook_url(monkeypatch):
    from assets import _runbook

    monkeypatch.setenv("RUNBOOK_URL", "https://git.example/ops/docs/runbook.md")
    _runbook._base.cache_clear()
    try:
        assert _runbook.runbook_metadata("migrate_job")["runbook"].url == \
            "https://git.example/ops/docs/runbook.md#migrate_job"
    finally:
        monkeypatch.undo()
        _runbook._base.cache_clear()
    assert _runbook.runbook_url("postgres_schema: drift") == "docs/runbook.md#postgres_schema-drift"


def test_an_anchor_is_what_a_markdown_heading_gets():
    assert runbook.anchor("stale restore-checked backup") == "stale-restore-checked-backup"
    assert runbook.anchor("check_postgres_schema_drift") == "check_postgres_schema_drift"
    assert runbook.anchor("postgres_schema: drift") == "postgres_schema-drift"
    assert runbook.link("migrate_job", "https://example.test/runbook.md") == "https://example.test/runbook.md#migrate_job"


def test_a_failed_run_alert_links_its_job_section(stack, monkeypatch):
    from orchestrator_data.alerts import Alert
    from resources import build_resources

    monkeypatch.setenv("RUNBOOK_URL", "https://git.example/ops/docs/runbook.md")
    alerts = build_resources()["alerts"]
    alert = Alert(run_id="r1", job="migrate_job", error="boom", runbook=alerts.runbook("migrate_job"))
    assert alert.to_dict()["runbook"] == "https://git.example/ops/docs/runbook.md#migrate_job"
    assert alert.detail().endswith("runbook: https://git.example/ops/docs/runbook.md#migrate_job")
