"""Runbook links as clickable URLs in the UI: a `runbook` metadata entry on jobs, schedules, sensors,
asset checks and check results, pointing at the section docs/runbook.md has for each (under
RUNBOOK_URL). Descriptions keep the link as text too (orchestrator_data.runbook.described)."""

from __future__ import annotations

import functools

import dagster as dg

from orchestrator_data import runbook
from orchestrator_data.settings import SettingsError, load_settings

RUNBOOK = "runbook"  # the metadata key


@functools.cache
def _base() -> str | None:
    """RUNBOOK_URL, read once when the code location loads (definitions are built then)."""
    try:
        return load_settings().runbook_url
    except SettingsError:  # the code location reports the bad setting elsewhere; links fall back to the path
        return None


def runbook_url(section: str) -> str:
    return runbook.link(section, _base())


def runbook_metadata(section: str) -> dict[str, dg.UrlMetadataValue]:
    """{"runbook": <url of the section>}, to merge into a definition's or a result's metadata."""
    return {RUNBOOK: dg.MetadataValue.url(runbook_url(section))}
