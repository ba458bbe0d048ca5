#!/bin/sh
# The WAL archiver and base backups (docs/recovery.md) connect for replication from another container:
# the image's pg_hba.conf only lets `all` databases in, which does not match replication connections.
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
