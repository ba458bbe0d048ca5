"""`orchestrator-data recovery reconcile`: after the database moved back in time, bring search and Redis
in line with it at once.

Exit codes: 0 done; 1 a server failed (an index left as it was: run it again); 2 bad input (an empty
--reason, no URL and no local stack)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import load_settings

app = typer.Typer(rich_markup_mode=None, help="Recovery of the database, and bringing the data layer in line after one.",
                  no_args_is_help=True)


@app.command("reconcile")
def reconcile(
    reason: Annotated[str, typer.Option("--reason", help="What moved the database back (kept in the report and in "
                                                         "each rebuilt index's record).")] = "recovery reconcile",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """After a recovery over the live database (a restore, a point-in-time recovery, a failover): erase again
    everyone the GDPR erasure ledger names, rebuild every synced search index from the recovered rows now, so nothing from after the recovery point stays searchable,
    and drop Redis state of executions and users that no longer exist, and the cache."""
    from orchestrator_data.recovery.aftermath import bring_in_line

    settings = load_settings()
    report = bring_in_line(settings, reason)
    recording.record(settings, "recovery reconcile",
                     lambda keys: [(keys.documents_key(done.index), done.sync) for done in report.search])
    if as_json:
        output.print_json(report.as_dict())
        return
    gdpr = report.gdpr
    mark = output.OK if gdpr["ok"] else output.FAIL
    output.info(f"{mark} gdpr   {len(gdpr['erased']):,} of {gdpr['entries']:,} people in the erasure ledger erased again"
                + (f"; unreadable ledger lines {gdpr['unreadable_lines']}" if gdpr["unreadable_lines"] else ""))
    for done in report.search:
        output.info(f"{output.OK} search {done.index:<12} rebuilt: {done.documents_before:,} documents before, "
                    f"{done.removed:,} without a row removed, {done.rewritten:,} rewritten, "
                    f"{done.documents_after:,} now ({done.duration_s:.1f} s)")
    if report.redis is not None:
        dropped = ", ".join(f"{count:,} {kind.replace('_', ' ')}" for kind, count in report.redis.items())
        output.info(f"{output.OK} redis  dropped: {dropped}")
    for service in report.not_configured:
        output.note(f"{service}: not configured, nothing to bring in line")
    output.info(f"{output.OK} brought in line in {report.duration_s:.1f} s ({report.reason})")
