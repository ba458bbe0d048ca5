"""Removing a test's snapshot repository: its snapshots (by name), then the registration; and
damaging one snapshot on disk as a broken repository would. Shared with tests/cli and tests/assets."""

from __future__ import annotations

from pathlib import Path

from elasticsearch import Elasticsearch, NotFoundError


def delete_repository(es: Elasticsearch, repository) -> None:
    try:
        found = es.snapshot.get(repository=repository.name, snapshot="*")["snapshots"]
    except NotFoundError:
        return
    names = [s["snapshot"] for s in found]
    if names:
        es.snapshot.delete(repository=repository.name, snapshot=",".join(names))
    es.options(ignore_status=404).snapshot.delete_repository(name=repository.name)


def break_snapshot(es: Elasticsearch, repository, name: str) -> Path:
    """Delete the snapshot's own file (`snap-<uuid>.dat`) from the fs repository on the node's disk, as a
    damaged or half-copied repository loses it; its data files and the repository's index stay."""
    uuid = es.snapshot.get(repository=repository.name, snapshot=name)["snapshots"][0]["uuid"]
    [node] = es.nodes.info(metric="settings")["nodes"].values()  # the one local node
    roots = node["settings"]["path"]["repo"]
    [root] = roots if isinstance(roots, list) else [roots]
    path = Path(root) / repository.location / f"snap-{uuid}.dat"
    path.unlink()  # FileNotFoundError if the layout on disk is not what this expects: the test then fails
    return path
