"""Search snapshots off the machine: an Elasticsearch `s3` snapshot repository in the same bucket
(below `<OFFSITE_PREFIX>/search-snapshots`). Managed services (Elastic Cloud, Amazon OpenSearch) refuse
`fs` repositories, and a node-local `fs` path is on the machine anyway.

Where it cannot work: the `s3` type comes from the repository-s3 module, which the local Elasticsearch
node does not have (Maven Central publishes only the server and netty4 for 8.x; elasticsearch-node/README.md).
`register` asks the nodes for it first and refuses with one line naming what is missing.

An Elasticsearch S3 repository takes its endpoint and credentials from the *nodes* (elasticsearch.yml and
the keystore, `s3.client.<client>.*`), not from the repository's settings: `node_settings` lists what to
put there, `KEYSTORE_ENTRIES` the secure settings to add with `elasticsearch-keystore add` — by name, the
values are never printed here."""

from __future__ import annotations

from urllib.parse import urlsplit

from orchestrator_data.offsite.config import StoreConfig
from orchestrator_data.offsite.errors import OffsiteError, OffsiteRefused

MODULE = "repository-s3"
CLIENT = "default"
BASE_PATH = "search-snapshots"
KEYSTORE_ENTRIES = (f"s3.client.{CLIENT}.access_key", f"s3.client.{CLIENT}.secret_key")


def repository_body(config: StoreConfig) -> dict:
    """The body of `PUT _snapshot/<name>` for the store of `config`."""
    return {"type": "s3", "settings": {"bucket": config.bucket, "base_path": config.key(BASE_PATH),
                                       "client": CLIENT}}


def node_settings(config: StoreConfig) -> dict[str, str]:
    """The elasticsearch.yml settings of the repository's client (empty for AWS S3 itself)."""
    if not config.endpoint_url:
        return {}
    parts = urlsplit(config.endpoint_url)
    return {f"s3.client.{CLIENT}.endpoint": parts.netloc, f"s3.client.{CLIENT}.protocol": parts.scheme,
            # an endpoint of our own serves buckets by path, not by DNS name
            f"s3.client.{CLIENT}.path_style_access": "true"}


def nodes_without_s3(client) -> list[str]:
    """The names of the nodes that lack the repository-s3 module (or plugin)."""
    nodes = client.nodes.info(metric="plugins")["nodes"]
    missing = []
    for node_id, node in nodes.items():
        names = {item.get("name") for item in node.get("modules", []) + node.get("plugins", [])}
        if MODULE not in names:
            missing.append(node.get("name") or node_id)
    return sorted(missing)


def register(client, name: str, config: StoreConfig) -> dict:
    """Register (and verify) the `s3` repository `name`; returns its body. OffsiteRefused when the cluster
    cannot have one: no node may lack the module, since every node writes to the repository."""
    missing = nodes_without_s3(client)
    if missing:
        raise OffsiteRefused(
            f"the Elasticsearch cluster has no `s3` snapshot repository type: node(s) {', '.join(missing)} lack the "
            f"{MODULE} module (the local node has none); keep snapshots in the `fs` repository there, and "
            "register the `s3` one on a cluster that has the module (docs/backups.md)")
    from elasticsearch import ApiError

    body = repository_body(config)
    try:
        client.snapshot.create_repository(name=name, repository=body, verify=True)
    except ApiError as exc:
        error = exc.body.get("error") if isinstance(exc.body, dict) else None
        reason = (error.get("reason") if isinstance(error, dict) else None) or exc.message
        raise OffsiteError(f"Elasticsearch could not register the `s3` repository {name} on {config.where}: "
                           f"{str(reason)[:300]}") from None
    return body
