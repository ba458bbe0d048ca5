"""`orchestrator-data recovery ...`: the WAL archive, base backups, restore to a point in time,
restore points and pruning (docs/recovery.md); `reconcile` brings search and Redis in line with a
database that moved back in time.

Exit codes: 0 done; 1 an operation failed; 2 bad input (one line naming it, nothing written)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import load_settings, service_url
from orchestrator_data.errors import BadInput

app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                  help="Point-in-time recovery: the WAL archive, base backups, restore to a moment, restore points, "
                       "and bringing the data layer in line after a recovery.")
point_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Named restore points.")
app.add_typer(point_app, name="point")

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _layout(settings):
    from orchestrator_data.recovery.layout import Layout

    return Layout.from_settings(settings)


def _primary(settings):
    from orchestrator_data.recovery.server import Primary

    return Primary(service_url(settings, "postgres"))


@app.command("archiver")
def archiver() -> None:
    """Run the WAL archiver in the foreground (pg_receivewal through the slot WAL_ARCHIVE_SLOT, restarted
    with backoff); SIGTERM or Ctrl-C stops it after flushing what it received."""
    import os
    import signal

    from orchestrator_data.recovery import keying
    from orchestrator_data.recovery.archiver import Archiver, config_from_settings, pid_file
    from orchestrator_data.stack.common import write_atomically

    settings = load_settings()
    if settings.wal_archive_mode == "off":
        raise BadInput("WAL_ARCHIVE_MODE is off: set it to async or sync to run the archiver")
    config = config_from_settings(settings, service_url(settings, "postgres"), keying.current_key(settings))
    runner = Archiver(config, log=lambda line: output.note(f"archiver: {line}"))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    config.layout.ensure()
    write_atomically(pid_file(config.layout), f"{os.getpid()}\n", mode=0o644)
    try:
        runner.run()
    finally:
        pid_file(config.layout).unlink(missing_ok=True)


@app.command("status")
def status(as_json: Json = False) -> None:
    """The archive: last archived LSN and time, lag (bytes, seconds) against the RPO target, what the
    slot retains, whether the archiver runs, and any gap (the windows that can no longer be restored).
    Exit 1 when the archive is behind its RPO target, has a gap or the slot lost WAL."""
    from orchestrator_data.recovery import report

    settings = load_settings()
    result = report.archive_report(settings, _primary(settings), _layout(settings))
    if as_json:
        output.print_json(result)
    else:
        for line in report.describe(result):
            output.info(line)
    if not result["healthy"]:
        raise typer.Exit(1)


@app.command("base-backup")
def base_backup(
    incremental: Annotated[bool, typer.Option("--incremental", help="Only what changed since the previous "
                                              "base backup (needs summarize_wal = on).")] = False,
    wait: Annotated[float, typer.Option("--wait", min=1, max=3600, help="Seconds to wait for the archive to "
                                        "hold the backup's end.")] = 120.0,
    as_json: Json = False,
) -> None:
    """Take a base backup into RECOVERY_DIR/base (encrypted with the backup key when one is set)."""
    from orchestrator_data.recovery import keying
    from orchestrator_data.recovery.base_backups import take_base_backup

    from orchestrator_data.cli import offsite

    settings = load_settings()
    offsite.precheck(settings)
    backup = take_base_backup(_primary(settings), _layout(settings), slot=settings.wal_archive_slot,
                              key=keying.current_key(settings), incremental=incremental, wait_timeout_s=wait)
    recording.record(settings, "recovery base-backup", lambda keys: [(keys.POSTGRES_BASE_BACKUP, backup)])
    if as_json:
        output.print_json(backup.as_dict())
    else:
        output.info(f"{output.OK} base backup {backup.id} ({backup.kind}, {backup.size_bytes} bytes, "
                    f"LSN {backup.as_dict()['start_lsn']}..{backup.as_dict()['end_lsn']})")
    offsite.push_if_configured(settings, base_ids=[backup.id], as_json=as_json)  # with the WAL it needs, when a bucket is set


@app.command("list")
def list_backups(as_json: Json = False) -> None:
    """The base backups, oldest first."""
    from orchestrator_data.recovery.base_backups import list_base_backups

    backups = [b.as_dict() for b in list_base_backups(_layout(load_settings()))]
    if as_json:
        output.print_json(backups)
        return
    if not backups:
        output.info("no base backup yet: `orchestrator-data recovery base-backup`")
    for b in backups:
        output.info(f"{b['id']}  {b['kind']:<11} {b['finished_at']}  LSN {b['end_lsn']:<12} {b['size_bytes']} bytes"
                    + (f"  (after {b['parent']})" if b["parent"] else ""))


@app.command("verify")
def verify(backup_id: Annotated[str, typer.Argument(help="A base backup id, or `latest`.")] = "latest") -> None:
    """Decrypt a base backup and check it with pg_verifybackup; exit 1 if it was tampered with."""
    from orchestrator_data.recovery import keying
    from orchestrator_data.recovery.base_backups import get_base_backup, list_base_backups, verify as verify_backup

    settings = load_settings()
    layout = _layout(settings)
    if backup_id == "latest":
        backups = list_base_backups(layout)
        if not backups:
            raise BadInput(f"no base backup in {layout.base}")
        backup = backups[-1]
    else:
        backup = get_base_backup(layout, backup_id)
    verify_backup(layout, backup, keying.key_lookup(settings))
    output.info(f"{output.OK} base backup {backup.id} verified (pg_verifybackup)")


@app.command("restore")
def restore(
    into: Annotated[Path | None, typer.Option("--into", help="New or empty directory of the restored cluster.")] = None,
    target_time: Annotated[str | None, typer.Option("--target-time", help="ISO 8601 time (UTC without an offset).")] = None,
    target_lsn: Annotated[str | None, typer.Option("--target-lsn", help="An LSN, e.g. 0/3000060.")] = None,
    target_xid: Annotated[str | None, typer.Option("--target-xid", help="A transaction id (included).")] = None,
    target_name: Annotated[str | None, typer.Option("--target-name", help="A restore point (its newest).")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Everything the archive holds.")] = False,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Port of the restored server "
                                             "(default: a free one).")] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Restore over the local stack's data directory "
                                           "(its server stopped; the old directory is moved aside).")] = False,
    confirm: Annotated[bool, typer.Option("--confirm", help="Required with --in-place.")] = False,
    from_offsite: Annotated[bool, typer.Option(
        "--from-offsite", help="Take the base backups and WAL from the object store (OFFSITE_BUCKET), not "
                               "RECOVERY_DIR: fetched into a scratch directory, verified, removed afterwards.")] = False,
    as_json: Json = False,
) -> None:
    """Restore the chain to a target into a new cluster and start it; report what it recovered to and how
    long it took. Never touches the running cluster."""
    from orchestrator_data.recovery import keying
    from orchestrator_data.recovery import restore as restoring
    from orchestrator_data.recovery.targets import parse_target

    settings = load_settings()
    target = parse_target(time=target_time, lsn=target_lsn, xid=target_xid, name=target_name, latest=latest)
    if in_place:
        if from_offsite:
            raise BadInput("--from-offsite restores --into a new directory; switch to it as after any restore "
                           "(docs/recovery.md)")
        if into is not None or port is not None:
            raise BadInput("--in-place restores into the local stack's data directory: leave out --into and --port")
        if not confirm:
            raise BadInput("--in-place replaces the local stack's database: add --confirm")
        from orchestrator_data.recovery.in_place import restore_in_place

        result = restore_in_place(settings, target, keying.key_lookup(settings))
    else:
        if into is None:
            raise BadInput("--into DIR is required (or --in-place --confirm)")
        if from_offsite:
            from orchestrator_data.cli import offsite
            from orchestrator_data.offsite.fetch import chain_workdir

            restoring.check_destination(into.expanduser().absolute())  # refused before anything is fetched
            with chain_workdir(offsite.store_of(settings), _layout(settings).root) as layout:
                result = restoring.restore(layout, target, into, port=port, key_for=keying.key_lookup(settings))
        else:
            result = restoring.restore(_layout(settings), target, into, port=port,
                                       key_for=keying.key_lookup(settings))
    if as_json:
        output.print_json(result.as_dict())
        return
    output.info(f"{output.OK} restored to {result.target} in {result.seconds:.1f} s into {result.into}")
    output.info(f"  recovered to: last commit {result.recovered_to_time or '-'}, LSN {result.recovered_to_lsn or '-'}"
                + (f", timeline {result.timeline}" if result.timeline else ""))
    if result.stopped:
        output.info(f"  {result.stopped}")
    if result.note:
        output.info(f"  note: {result.note}")
    output.info(f"  running at {result.url} (base backups {', '.join(result.base_backups)})")


@point_app.command("create")
def point_create(name: Annotated[str, typer.Argument(help="The restore point's name (unique).")],
                 as_json: Json = False) -> None:
    """Make a named restore point (pg_create_restore_point), recorded in RECOVERY_DIR/restore_points.jsonl."""
    from dataclasses import asdict

    from orchestrator_data.recovery.points import create_point

    settings = load_settings()
    point = create_point(_primary(settings), _layout(settings), name)
    if as_json:
        output.print_json(asdict(point))
    else:
        output.info(f"{output.OK} restore point {point.name} at LSN {point.lsn} ({point.time})")


@point_app.command("list")
def point_list(as_json: Json = False) -> None:
    """The restore points made so far."""
    from dataclasses import asdict

    from orchestrator_data.recovery.points import list_points

    points = list_points(_layout(load_settings()))
    if as_json:
        output.print_json([asdict(p) for p in points])
        return
    for p in points:
        output.info(f"{p.name}  LSN {p.lsn}  {p.time}")


@app.command("check")
def check(as_json: Json = False) -> None:
    """Prove the chain: write marker rows, restore a random point of the window into a scratch cluster,
    check every marker before it is there and none after, drop the cluster; record the recovery time and
    the RPO now. Exit 1 when the proof fails or the archive has a gap."""
    from orchestrator_data.recovery import keying
    from orchestrator_data.recovery.check import run_check

    settings = load_settings()
    result = run_check(_primary(settings), _layout(settings), slot=settings.wal_archive_slot,
                       key_for=keying.key_lookup(settings))
    recording.record(settings, "recovery check", lambda keys: [(keys.RECOVERY_CHECK, result)])
    if as_json:
        output.print_json(result.as_dict())
    else:
        mark = output.OK if result.ok else output.FAIL
        output.info(f"{mark} restored to {result.target_time}: {result.markers_found}/{result.markers_expected} markers, "
                    f"{len(result.unexpected)} from after the target; {result.tables_compared} table(s) equal to the "
                    f"source at the target" + (f" ({len(result.tables_not_compared)} written around it, not compared)"
                                               if result.tables_not_compared else "")
                    + f"; recovery {result.recovery_seconds} s, "
                    f"RPO now {result.rpo_lag_seconds} s")
        for problem in result.problems:
            output.info(f"  problem: {problem}")
    if not result.ok:
        raise typer.Exit(1)


@app.command("prune")
def prune(dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
          as_json: Json = False) -> None:
    """Delete the base backups and WAL the recovery window (RECOVERY_WINDOW_DAYS) and
    RECOVERY_KEEP_BASE_BACKUPS no longer need."""
    from orchestrator_data.recovery.prune import prune as pruning

    settings = load_settings()
    result = pruning(_layout(settings), settings.recovery_window_days, settings.recovery_keep_base_backups,
                     dry_run=dry_run)
    recording.record(settings, "recovery prune", lambda keys: [(keys.RECOVERY_PRUNE, result)])
    if as_json:
        output.print_json(result.as_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    output.info(f"{verb} {len(result.delete_backups)} base backup(s), {len(result.delete_wal)} WAL file(s) and "
                f"{len(result.delete_check_tables)} recovery check fingerprint file(s), "
                f"{result.freed_bytes} bytes; kept {len(result.keep)} base backup(s), WAL from {result.wal_kept_from or '-'}")
    for note in result.notes:
        output.info(f"  {note}")


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


# the local HA pair's planned switchover (cli/failover.py)
from orchestrator_data.cli.failover import failover as _failover  # noqa: E402

app.command("failover")(_failover)
