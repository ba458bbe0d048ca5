"""After a failover, on the search sync's next run: does the data layer still agree with the new primary?

Each index carries, with its writer stamp, the primary's WAL position when it was last written
(search/history.py, replication/timeline.py). When the primary's timeline is no longer the one stamped:

* the stamped position is past the point where the new timeline branched off (a failover to a standby
  that lagged), or the history cannot be read: commits the index was built from are gone, so the whole
  aftermath of a recovery runs (recovery/aftermath.py `bring_in_line`: the GDPR erasures again, every synced
  index rebuilt from the new primary's rows, Redis state of executions and users that no longer exist
  dropped, and the cache);
* the stamped position is in the new history (a switchover, or a failover that lost nothing the index
  holds): search is right as it is and its watermark valid; Redis is still brought in line, since state
  written after the last sync may belong to commits the failover lost (it only drops what the database
  does not have, and the cache).

Then every index is stamped with the new primary's position (same writer), so this runs once per failover.
Cheap when nothing changed: one mapping read per index and one query. A module of its own, beside the
packages it joins (replication, search, recovery): inside any of them it would close an import cycle.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field

from orchestrator_data.replication.timeline import Verdict, judge, position_of

log = logging.getLogger(__name__)


@dataclass
class TimelineChange:
    verdicts: dict[str, Verdict] = field(default_factory=dict)   # index -> what its stamp says
    aftermath: dict | None = None      # recovery/aftermath.py's report, when commits were lost
    redis: dict[str, int] | None = None
    restamped: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def lost(self) -> bool:
        return any(v.lost for v in self.verdicts.values())

    def describe(self) -> str:
        first = next(iter(self.verdicts.values()))
        done = ("search rebuilt and Redis brought in line" if self.lost else
                "search kept (its watermark is valid on the new timeline), Redis brought in line"
                if self.redis is not None else "search kept (its watermark is valid on the new timeline)")
        return f"the primary changed ({first.why}): {done}"

    def as_dict(self) -> dict:
        return {"lost": self.lost, "verdicts": {name: {"why": v.why, "lost": v.lost} for name, v in self.verdicts.items()},
                "aftermath": self.aftermath, "redis": self.redis, "restamped": self.restamped,
                "duration_s": round(self.duration_s, 3)}


def _stamped(client, layout, name):
    """The newest writer stamped on the index's backing indices (None: no stamp with a position)."""
    from orchestrator_data.search.history import index_writers

    stamps = [w for w in index_writers(client, layout, name).values() if w is not None and w.position is not None]
    return max(stamps, key=lambda w: w.generation) if stamps else None


def follow_timeline(settings, engine, client, layout) -> TimelineChange | None:
    """Bring search and Redis in line when the primary changed since the indices were last written; None when
    nothing changed (or nothing was ever stamped)."""
    from orchestrator_data.search.history import index_writers, stamp
    from orchestrator_data.search.indices import write_index
    from orchestrator_data.search.locks import index_lock
    from orchestrator_data.search.sources import SYNCED

    started = time.monotonic()
    change = TimelineChange()
    writers = {}
    with engine.connect() as conn:
        for name in SYNCED:
            if write_index(client, layout, name) is None:
                continue
            writer = _stamped(client, layout, name)
            if writer is None:
                continue
            verdict = judge(conn, writer.position)
            if verdict is not None and verdict.timeline_changed:
                change.verdicts[name], writers[name] = verdict, writer
        conn.rollback()
    if not change.verdicts:
        return None
    log.warning("%s", change.verdicts[next(iter(change.verdicts))].why)
    if change.lost:
        from orchestrator_data.recovery.aftermath import bring_in_line

        report = bring_in_line(settings, f"failover: {next(v.why for v in change.verdicts.values() if v.lost)}")
        change.aftermath, change.redis = report.as_dict(), report.redis
    else:
        change.redis = _redis_in_line(settings, engine)
    position = position_of(engine)
    for name, writer in writers.items():
        alias = layout.read_alias(name)
        with index_lock(engine, alias, 60.0):
            # only where the stamp is still the one judged: a rebuild or a sync since has stamped its own
            stamps = index_writers(client, layout, name)
            same = [index for index, found in stamps.items() if found is not None and found.id == writer.id]
            if same and position is not None:
                stamp(client, same, writer, position)
                change.restamped.append(name)
    change.duration_s = time.monotonic() - started
    return change


def _redis_in_line(settings, engine) -> dict[str, int] | None:
    from orchestrator_data import connections
    from orchestrator_data.recovery.aftermath import bring_redis_in_line

    before_ms = int(time.time() * 1000)
    url = None
    with suppress(connections.ServiceNotConfigured):
        url = connections.resolve_url("redis", settings)
    if url is None:
        return None
    with ExitStack() as closing:
        client = connections.redis_client(settings, url)
        closing.callback(client.close)
        return bring_redis_in_line(engine, client, before_ms)
