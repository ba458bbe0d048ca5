"""Removing a test's snapshot repository: its snapshots (by name), then the registration. Shared with
tests/cli and tests/assets."""

from __future__ import annotations

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
