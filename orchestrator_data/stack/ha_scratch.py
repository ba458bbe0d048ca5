"""A scratch HA pair of its own (etcd and two Patroni members on free ports, in a temporary directory, with
generated passwords), for the failover drill and its benchmark: never the configured database."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator_data.replication.drill import DrillResult, run_drill
from orchestrator_data.replication.engine import HACluster, Ports
from orchestrator_data.replication.patroni_config import Passwords
from orchestrator_data.stack.common import free_port
from orchestrator_data.stack.ha_postgres import build_cluster


@contextmanager
def scratch_pair(mode: str = "sync", *, parent: Path | None = None) -> Iterator[HACluster]:
    """Start a pair, yield it healthy, stop it and remove its directory (whatever happened)."""
    root = Path(tempfile.mkdtemp(prefix="od-drill-", dir=parent))
    ports = Ports(postgres=0, api=0, etcd_client=free_port(), etcd_peer=free_port())
    passwords = Passwords(*(secrets.token_urlsafe(18) for _ in range(3)))
    cluster = build_cluster(root, standbys=1, ports=ports, passwords=passwords, mode=mode,
                            pg_ports=[free_port(), free_port()], api_ports=[free_port(), free_port()])
    try:
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def drill_on_scratch_pair(*, kind: str = "postgres", mode: str = "sync", rate: float = 200.0,
                          parent: Path | None = None) -> DrillResult:
    """One failover drill (replication/drill.py) on a pair started for it and removed after."""
    with scratch_pair(mode, parent=parent) as cluster:
        # generous bounds: on a loaded machine the old primary's crash recovery alone can take tens of seconds
        return run_drill(cluster, kind=kind, rate=rate, timeout_s=90, rejoin_timeout_s=120)
