"""Is the database a sync reads the one that wrote the index? Noticing, with nobody to remember it,
that PostgreSQL moved back in time (a point-in-time recovery, a logical restore over the live
database, a failover to a lagging standby) or that the index did (restored from a snapshot).

Either leaves documents the rows no longer explain: orphans no incremental sync sees (their rows'
deletion happened in the lost future, or never happened at all), and documents whose external version
is above a row rewritten later, which no sync may overwrite. Nothing in the rows says so. So:

* every run that writes an index first takes a new **writer** identity (a random id and a generation,
  the previous one's plus one), in search_sync_state and on every backing index behind the read alias
  (their mapping's `_meta.writer`), before its first document and after the snapshot it reads is taken;
* at the start of the next run, the two must name the same writer. A database whose writer is older
  than the index's went back; an index whose writer is older than the database's went back; either
  way the run rebuilds the index from PostgreSQL (rebuild.py).

Why before the first write, and not once the run applied: a run that fails halfway has written
documents all the same, and a database moved back to between that run's snapshot and the end of a
later one would otherwise match the index while it holds them. The claim commits after the snapshot
was taken, so a database that still has the claim has every commit the run's documents came from; one
that lost it has lost the claim too. A run with nothing to write claims nothing.

Why not PostgreSQL's timeline or system identifier alone: a logical restore over the live database changes
neither, and a clean switchover changes the timeline with nothing lost (a needless rebuild). Each stamp
carries the primary's WAL position all the same (timeline and LSN): after a failover it says whether what
the index holds is in the new primary's history (replication/timeline.py, replication/aftermath.py).

Not covered: a database moved back to between a full load by month (full_load.py, which claims
nothing: its partitions run side by side) and the first sync after it; that sync starts from the
loads the database recorded. `orchestrator-data recovery reconcile`, run after any recovery, rebuilds
every index whatever the writers say.

A backing index without a stamp next to stamped ones was created by a rollover since the last run
that wrote (the next run stamps it); an index where none carries one while the database names a writer
was restored from an older snapshot or recreated by hand. Both unset: written before revision 0012.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from elasticsearch import Elasticsearch, NotFoundError

from orchestrator_data.postgres import models
from orchestrator_data.replication.timeline import Position, current_position
from orchestrator_data.search.indices import Layout

META_KEY = "writer"
DIFFER = "database and index histories differ (restore or failover)"


@dataclass(frozen=True)
class Writer:
    id: str
    generation: int
    # where the primary's WAL stood when the stamp was put on (replication/timeline.py): after a failover,
    # whether what the index holds is in the new primary's history. Not part of the writer's identity.
    position: Position | None = field(default=None, compare=False)

    def as_meta(self) -> dict:
        return {"id": self.id, "generation": self.generation,
                **({"position": self.position.as_meta()} if self.position else {})}


def next_writer(previous: Writer | None) -> Writer:
    return Writer(str(uuid.uuid4()), (previous.generation if previous else 0) + 1)


def database_writer(state: sa.Row | None) -> Writer | None:
    """The writer search_sync_state names (None: never synced, or not since revision 0012)."""
    if state is None or state.writer_id is None:
        return None
    return Writer(str(state.writer_id), int(state.writer_generation))


def _from_meta(mappings: dict) -> Writer | None:
    found = (mappings.get("_meta") or {}).get(META_KEY)
    if not isinstance(found, dict) or "id" not in found:
        return None
    return Writer(str(found["id"]), int(found.get("generation", 0)), Position.from_meta(found.get("position")))


def index_writers(client: Elasticsearch, layout: Layout, name: str) -> dict[str, Writer | None]:
    """Each backing index behind the read alias, and the writer its `_meta` names (none: no index; the
    run then rebuilds, which says to create it)."""
    try:
        found = client.indices.get_mapping(index=layout.read_alias(name))
    except NotFoundError:
        return {}
    return {index: _from_meta(body.get("mappings") or {}) for index, body in sorted(found.items())}


def difference(database: Writer | None, stamps: dict[str, Writer | None]) -> str | None:
    """Why the database's writer and the index's disagree, in one line; None when they agree."""
    stamped = {w for w in stamps.values() if w is not None}
    if not stamped:
        if database is None:
            return None
        return (f"{DIFFER}: the database's last writer is run #{database.generation}, the index carries none "
                f"(restored from an older snapshot, or recreated outside orchestrator-data)")
    if len(stamped) > 1:
        return (f"{DIFFER}: its backing indices were written by different runs "
                f"({', '.join(f'#{w.generation}' for w in sorted(stamped, key=lambda w: w.generation))}): "
                f"some were restored from a snapshot")
    [index] = stamped
    if database is None:
        return (f"{DIFFER}: the index was written by run #{index.generation}, the database knows no run "
                f"(it went back to before the index's first sync)")
    if database.id == index.id:
        return None
    if database.generation < index.generation:
        return (f"{DIFFER}: the database went back to run #{database.generation}, the index was written by run "
                f"#{index.generation} (a restore, a point-in-time recovery or a failover to a lagging standby)")
    if database.generation > index.generation:
        return (f"{DIFFER}: the index went back to run #{index.generation}, the database is at run "
                f"#{database.generation} (the index was restored from a snapshot)")
    return f"{DIFFER}: the database and the index were each written by a different run #{index.generation}"


def histories_differ(client: Elasticsearch, layout: Layout, name: str, state: sa.Row | None) -> str | None:
    """Why the index is not the one the database's sync state speaks of; None when it is."""
    return difference(database_writer(state), index_writers(client, layout, name))


def stamp(client: Elasticsearch, indices: list[str], writer: Writer, position: Position | None = None) -> None:
    """Name `writer` in each index's `_meta`, keeping what else is there (the template's mapping version),
    with the primary's WAL `position` now: every document written so far came from commits before it."""
    writer = dataclasses.replace(writer, position=position) if position is not None else writer
    for index in indices:
        meta = client.indices.get_mapping(index=index)[index]["mappings"].get("_meta") or {}
        client.indices.put_mapping(index=index, meta={**meta, META_KEY: writer.as_meta()})


def claim(engine: sa.Engine, client: Elasticsearch, alias: str, backing: list[str]) -> Writer | None:
    """A new writer for an index that has a sync state, recorded in PostgreSQL and stamped on `backing`
    before anything is written (call it after the run's snapshot was taken). The database's row is
    committed once the stamps are on: if stamping fails, the database keeps the old writer, and the next
    run, finding some indices stamped and the database not, rebuilds. None: no state row to claim in
    (the run records its writer with its state at the end)."""
    table = models.search_sync_state
    writer_id = uuid.uuid4()
    with engine.begin() as conn:
        generation = conn.execute(
            sa.update(table).where(table.c.index_name == alias)
            .values(writer_id=writer_id, writer_generation=sa.func.coalesce(table.c.writer_generation, 0) + 1)
            .returning(table.c.writer_generation)).scalar()
        if generation is None:
            return None
        writer = Writer(str(writer_id), int(generation))
        stamp(client, backing, writer, current_position(conn))
    return writer
