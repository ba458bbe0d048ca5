"""`recovery check`: prove the chain restores, not hope it. Each run writes a pair of marker rows into
the database (schema _recovery_check): `before`, then — once it committed — the target time it will be
restored to, recorded in the `after` row committed next. A random pair from the window (this run's or an
older one) is restored into a scratch cluster: every marker up to its `before` row must be there, none
from its `after` row on — and the application tables hold what the source held at the target: the logical
restore check's row counts and checksums per table, recorded by the run that wrote the pair (see
`_write_markers` for why a physical restore pins them with two snapshots). The scratch cluster is
dropped; recovery time, the RPO right now, the tables compared and any gap in the archive are recorded in
RECOVERY_DIR/checks.jsonl."""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import psycopg

from orchestrator_data.backups import _pg
from orchestrator_data.recovery import report, restore
from orchestrator_data.recovery.base_backups import list_base_backups
from orchestrator_data.recovery.errors import RecoveryError, RecoveryRefused
from orchestrator_data.recovery.layout import Layout, lsn_to_int
from orchestrator_data.recovery.server import Primary
from orchestrator_data.recovery.status import archive_status, wait_archived
from orchestrator_data.recovery.targets import Target
from orchestrator_data import urls

SCHEMA = "_recovery_check"
HISTORY = "checks.jsonl"
FINGERPRINTS = "check_tables"   # RECOVERY_DIR/check_tables/<run>.json: each run's table fingerprints


@dataclass
class CheckReport:
    ok: bool
    target_time: str | None
    pair: int | None                    # the run id whose markers were restored
    markers_expected: int
    markers_found: int
    unexpected: list[int]               # markers from after the target found in the restore
    missing: list[int]                  # markers from before the target not found
    recovery_seconds: float | None
    rpo_lag_seconds: float | None
    rpo_lag_bytes: int | None
    gaps: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checked_at: str = ""
    tables_compared: int = 0                                 # row counts and checksums equal to the source's
    tables_not_compared: list[str] = field(default_factory=list)  # written while the markers were (see _write_markers)
    table_differences: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _snapshot(primary: Primary) -> psycopg.Connection:
    """A connection whose REPEATABLE READ snapshot is taken now (its first query); read later."""
    conn = primary.connect("orchestrator-data-recovery-check")
    conn.autocommit = False
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    conn.execute("SELECT 1")
    return conn


def _write_markers(primary: Primary, layout: Layout) -> int:
    """The run's marker pair and its table fingerprints: the application tables' row counts and checksums
    (the logical restore check's, backups/_pg.py) in a snapshot taken just before the target and in one
    taken just after the `after` marker. A table equal in both held exactly that at the target; a table
    written in between (a sub-second window) cannot be pinned to the target and is left out, by name."""
    with primary.connect("orchestrator-data-recovery-check") as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.markers (id bigserial PRIMARY KEY, run text NOT NULL, "
                     "phase text NOT NULL, target_time timestamptz, written_at timestamptz DEFAULT clock_timestamp())")
        run = os.urandom(6).hex()
        conn.execute(f"INSERT INTO {SCHEMA}.markers (run, phase) VALUES (%s, 'before')", (run,))
        before = _snapshot(primary)
        try:
            # the target: after `before` committed (and the first snapshot), before `after` commits
            target = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            conn.execute(f"INSERT INTO {SCHEMA}.markers (run, phase, target_time) VALUES (%s, 'after', %s)", (run, target))
            lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            after = _snapshot(primary)
            try:
                # the checksums read the two snapshots afterwards: the window between them stays sub-second
                first, second = _pg.table_checksums(before), _pg.table_checksums(after)
            finally:
                after.close()
        finally:
            before.close()
    stable = {name: value for name, value in first.items() if second.get(name) == value}
    fingerprints = {"run": run, "target_time": target.isoformat(), "tables": stable,
                    "changing": sorted(set(first) - set(stable))}
    directory = layout.root / FINGERPRINTS
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{run}.json.tmp"
    temporary.write_text(json.dumps(fingerprints))
    os.replace(temporary, directory / f"{run}.json")
    return lsn_to_int(lsn)


def _pairs(primary: Primary, since: datetime) -> list[tuple[int, int, datetime, str]]:
    """(before id, after id, target time, run) of every run whose `before` marker is inside the window."""
    with primary.connect("orchestrator-data-recovery-check") as conn:
        return conn.execute(
            f"SELECT b.id, a.id, a.target_time, b.run FROM {SCHEMA}.markers b JOIN {SCHEMA}.markers a "
            "ON a.run = b.run AND a.phase = 'after' WHERE b.phase = 'before' AND b.written_at > %s ORDER BY b.id",
            (since,)).fetchall()


def _fingerprints(layout: Layout, run: str) -> dict | None:
    try:
        return json.loads((layout.root / FINGERPRINTS / f"{run}.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def compare_tables(expected: dict[str, dict], restored: dict[str, dict]) -> list[str]:
    """The logical check's comparison (backups/restore.py `compare`), on the tables pinned to the target."""
    from orchestrator_data.backups.restore import compare

    # only the pinned tables: one created or written around the target is not expected to match
    pinned = {name: restored[name] for name in expected if name in restored}
    return compare({"tables": expected, "migration_head": None}, pinned, None)


def run_check(primary: Primary, layout: Layout, *, slot: str, key_for, rng: random.Random | None = None,
              wait_s: float = 60.0) -> CheckReport:
    rng = rng or random.Random()
    backups = list_base_backups(layout)
    if not backups:
        raise RecoveryRefused(f"no base backup in {layout.base}: nothing to check")
    end = _write_markers(primary, layout)
    if not wait_archived(primary, slot, end, wait_s):
        raise RecoveryError(f"the archive did not reach the check's markers within {wait_s:.0f} s: is the archiver running?")
    candidates = _pairs(primary, backups[0].finished_at)
    # runs from before the fingerprints existed are skipped while a run that has them is in the window
    candidates = [c for c in candidates if (layout.root / FINGERPRINTS / f"{c[3]}.json").is_file()] or candidates
    before_id, after_id, target_time, run = rng.choice(candidates)
    fingerprints = _fingerprints(layout, run)
    with primary.connect() as conn:
        all_ids = [row[0] for row in conn.execute(f"SELECT id FROM {SCHEMA}.markers ORDER BY id")]
    expected = [i for i in all_ids if i <= before_id]
    scratch = layout.scratch("check")
    into = scratch / "data"
    problems: list[str] = []
    found: list[int] = []
    restored_tables: dict[str, dict] = {}
    seconds = None
    try:
        result = restore.restore(layout, Target("time", time=target_time), into, key_for=key_for, scratch=True)
        seconds = result.seconds
        parsed = urls.parse_postgres_url(primary.url)
        try:
            with psycopg.connect(host=str(into), port=result.port, user=parsed.username or "postgres",
                                 password=_pg.split_password(primary.url)[1], dbname=parsed.database or "postgres",
                                 connect_timeout=10) as conn:
                found = [row[0] for row in conn.execute(f"SELECT id FROM {SCHEMA}.markers ORDER BY id")]
                restored_tables = _pg.table_checksums(conn) if fingerprints else {}
        finally:
            restore.stop_cluster(into, immediate=True)  # dropped right after
    except (RecoveryError, RecoveryRefused) as exc:
        problems.append(exc.one_line())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    differences: list[str] = []
    if fingerprints is None:
        problems.append(f"no table fingerprints recorded for run {run}: tables not compared")
    elif seconds is not None:
        differences = compare_tables(fingerprints["tables"], restored_tables)
        if differences:
            problems.append(f"{len(differences)} table difference(s) from the source at the target: {differences[0]}")
    missing = [i for i in expected if i not in found]
    unexpected = [i for i in found if i > before_id]
    if not problems and missing:
        problems.append(f"{len(missing)} marker(s) committed before the target are missing from the restore")
    if unexpected:
        problems.append(f"{len(unexpected)} marker(s) committed after the target are in the restore")
    gaps = report.gap_windows(layout, key_for)
    if gaps:
        problems.append(f"{len(gaps)} gap(s) in the archive")
    status = archive_status(primary, layout, slot)
    check = CheckReport(
        ok=not problems, target_time=target_time.isoformat(), pair=before_id, markers_expected=len(expected),
        markers_found=len(found), unexpected=unexpected, missing=missing, recovery_seconds=seconds,
        rpo_lag_seconds=status.lag_seconds, rpo_lag_bytes=status.lag_bytes, gaps=gaps, problems=problems,
        checked_at=datetime.now(UTC).isoformat(),
        tables_compared=len(fingerprints["tables"]) - len(differences) if fingerprints and seconds is not None else 0,
        tables_not_compared=fingerprints["changing"] if fingerprints else [], table_differences=differences)
    with open(layout.root / HISTORY, "a") as fh:
        fh.write(json.dumps(check.as_dict(), default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return check


def history(layout: Layout) -> list[dict]:
    try:
        lines = (layout.root / HISTORY).read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


