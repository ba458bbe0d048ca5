"""Point-in-time recovery: the physical backup chain, driven through PostgreSQL 18's own tools.

    RECOVERY_DIR/archive.json          which cluster the archive belongs to (system identifier, segment size)
    RECOVERY_DIR/wal/                  the WAL archive (pg_receivewal through a slot; sealed segments)
    RECOVERY_DIR/base/<id>/            one base backup (manifest.json written last)
    RECOVERY_DIR/restore_points.jsonl  named restore points (name, lsn, time)

Modules: layout (paths and names), server (connections and the tools' environment), archiver (the
long-lived pg_receivewal supervisor), wal (sealing, staging, scanning and gaps of the archive),
base_backups, targets, restore, points, status, prune, check; aftermath (after a recovery over the
live database, the rest of the data layer brought in line with it). Never imports dagster."""
