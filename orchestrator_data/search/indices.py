"""The five search indices: their definitions (data files in search/indices/), their names, and
creating them idempotently.

Every index is read through a read alias and written through a write alias, over backing indices
named after their mapping version:

    <prefix>-<name>                     read alias (every backing index)
    <prefix>-<name>-write               write alias (the current backing index, is_write_index)
    <prefix>-<name>-v<version>-000001   backing indices (rollover continues the counter)
    <prefix>-<name>                     composable index template for <prefix>-<name>-v*
    <prefix>-common                     component template every index template is composed of

The prefix (SEARCH_INDEX_PREFIX) lets several deployments, or tests, share one cluster. Shards and
replicas come from the settings (SEARCH_SHARDS, SEARCH_REPLICAS), never from the data files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

from elasticsearch import Elasticsearch, NotFoundError

from orchestrator_data.policy_files import data_file
from orchestrator_data.search.errors import InvalidDefinition, SearchError, UnknownIndex
from orchestrator_data.search.names import NAMES

COMMON = "common"
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")
TEMPLATE_PRIORITY = 200


@dataclass(frozen=True)
class IndexDefinition:
    name: str
    version: int                    # the mapping version: a new version means a new backing index
    settings: dict
    mappings: dict


def _load(file_name: str) -> dict:
    text = (resources.files("orchestrator_data.search") / "indices" / file_name).read_text(encoding="utf-8")
    return data_file(text, f"search/indices/{file_name}", InvalidDefinition)


def _definition(file_name: str, expected_name: str | None) -> IndexDefinition:
    data = _load(file_name)
    where = f"search/indices/{file_name}"
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidDefinition(f"{where}: 'version' must be a whole number >= 1")
    mappings = data.get("mappings")
    if not isinstance(mappings, dict) or not isinstance(mappings.get("properties"), dict):
        raise InvalidDefinition(f"{where}: 'mappings.properties' must be an object")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise InvalidDefinition(f"{where}: 'settings' must be an object")
    if any(key in settings for key in ("number_of_shards", "number_of_replicas", "index.number_of_shards",
                                       "index.number_of_replicas")):
        raise InvalidDefinition(f"{where}: shards and replicas come from SEARCH_SHARDS / SEARCH_REPLICAS")
    name = data.get("name", expected_name)
    if expected_name is not None and name != expected_name:
        raise InvalidDefinition(f"{where}: 'name' is '{name}', expected '{expected_name}'")
    return IndexDefinition(name or COMMON, version, settings, mappings)


def definitions() -> dict[str, IndexDefinition]:
    """Every index's definition, read from the package's data files."""
    return {name: _definition(f"{name}.json", name) for name in NAMES}


def common_definition() -> IndexDefinition:
    return _definition(f"{COMMON}.json", None)


def definition(name: str) -> IndexDefinition:
    if name not in NAMES:
        raise UnknownIndex(name)
    return _definition(f"{name}.json", name)


@dataclass(frozen=True)
class Layout:
    """The names of everything an index is made of, under one prefix."""

    prefix: str = "od"

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise SearchError("SEARCH_INDEX_PREFIX must be 1-40 lower-case letters, digits or underscores")

    def read_alias(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def write_alias(self, name: str) -> str:
        return f"{self.prefix}-{name}-write"

    def template(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def component(self) -> str:
        return f"{self.prefix}-{COMMON}"

    def pattern(self, name: str) -> str:
        return f"{self.prefix}-{name}-v*"

    def backing(self, name: str, version: int, generation: int = 1) -> str:
        return f"{self.prefix}-{name}-v{version}-{generation:06d}"

    def version_of(self, name: str, backing_index: str) -> int | None:
        """The mapping version a backing index was built with, from its name."""
        match = re.fullmatch(rf"{re.escape(self.prefix)}-{re.escape(name)}-v(\d+)-\d{{6}}", backing_index)
        return int(match.group(1)) if match else None


@dataclass
class IndexInit:
    name: str
    read_alias: str
    write_alias: str
    write_index: str
    mapping_version: int
    created: bool                   # a backing index was created now
    needs_reindex: bool = False     # the live index has an older mapping version than the definition


@dataclass
class IndexStatus:
    name: str
    alias: str
    exists: bool
    backing_indices: list[str] = field(default_factory=list)
    write_index: str | None = None
    mapping_version: int | None = None
    documents: int = 0
    size_bytes: int = 0


def _template_body(layout: Layout, index: IndexDefinition, shards: int, replicas: int) -> dict:
    return {
        "index_patterns": [layout.pattern(index.name)],
        "composed_of": [layout.component()],
        "priority": TEMPLATE_PRIORITY,
        "template": {
            # no aliases here: a reindex builds its new index out of sight of the read alias, and
            # a rollover request adds the read alias to the index it creates
            "settings": {**index.settings, "number_of_shards": shards, "number_of_replicas": replicas},
            "mappings": {**index.mappings, "_meta": {"mapping_version": index.version, "index": index.name}},
        },
        "_meta": {"mapping_version": index.version, "managed_by": "orchestrator-data"},
    }


def put_templates(client: Elasticsearch, layout: Layout, names: tuple[str, ...] = NAMES, *,
                  shards: int = 1, replicas: int = 0) -> None:
    """The component template and each index template (PUT replaces: idempotent)."""
    common = common_definition()
    client.cluster.put_component_template(name=layout.component(), template={
        "settings": common.settings, "mappings": common.mappings}, meta={"version": common.version})
    for name in names:
        index = definition(name)
        body = _template_body(layout, index, shards, replicas)
        client.indices.put_index_template(name=layout.template(name), index_patterns=body["index_patterns"],
                                          composed_of=body["composed_of"], priority=body["priority"],
                                          template=body["template"], meta=body["_meta"])


def _aliases(client: Elasticsearch, alias: str) -> dict[str, dict]:
    """{backing index: alias properties} for an alias; empty when it does not exist."""
    try:
        found = client.indices.get_alias(name=alias)
    except NotFoundError:
        return {}
    return {index: body.get("aliases", {}).get(alias, {}) for index, body in found.items()}


def write_index(client: Elasticsearch, layout: Layout, name: str) -> str | None:
    members = _aliases(client, layout.write_alias(name))
    for index, properties in members.items():
        if properties.get("is_write_index"):
            return index
    return next(iter(members), None)


def init_indices(client: Elasticsearch, layout: Layout, names: tuple[str, ...] = NAMES, *,
                 shards: int = 1, replicas: int = 0) -> list[IndexInit]:
    """Templates, then for each index without a read alias its first backing index with both aliases.
    Idempotent: an index that exists is left as it is (a newer mapping version is reported, not applied:
    that is a reindex)."""
    for name in names:
        definition(name)  # refuse an unknown name before anything is written
    put_templates(client, layout, names, shards=shards, replicas=replicas)
    results = []
    for name in names:
        index = definition(name)
        current = write_index(client, layout, name)
        created = False
        if current is None:
            current = layout.backing(name, index.version)
            client.indices.create(index=current, aliases={
                layout.read_alias(name): {}, layout.write_alias(name): {"is_write_index": True}})
            created = True
        live_version = layout.version_of(name, current) or index.version
        results.append(IndexInit(name, layout.read_alias(name), layout.write_alias(name), current, live_version,
                                 created, needs_reindex=live_version < index.version))
    return results


def index_status(client: Elasticsearch, layout: Layout, name: str) -> IndexStatus:
    definition(name)
    alias = layout.read_alias(name)
    members = _aliases(client, alias)
    if not members:
        return IndexStatus(name, alias, exists=False)
    stats = client.indices.stats(index=alias, metric="docs,store")
    documents = stats["_all"]["primaries"].get("docs", {}).get("count", 0)
    size = stats["_all"]["total"].get("store", {}).get("size_in_bytes", 0)
    current = write_index(client, layout, name)
    return IndexStatus(name, alias, True, sorted(members), current,
                       layout.version_of(name, current) if current else None, documents, size)


def creation_dates(client: Elasticsearch, indices: list[str]) -> dict[str, datetime]:
    """When each of `indices` was created (the index setting index.creation_date)."""
    found = client.indices.get_settings(index=",".join(indices), name="index.creation_date")
    return {index: datetime.fromtimestamp(int(body["settings"]["index"]["creation_date"]) / 1000, UTC)
            for index, body in found.items()}


def layout_of(settings) -> Layout:
    """The layout under SEARCH_INDEX_PREFIX."""
    return Layout(settings.search_index_prefix)


def drop_indices(client: Elasticsearch, layout: Layout, names: tuple[str, ...] = NAMES) -> list[str]:
    """Delete the backing indices and templates of `names` under the layout's prefix (reset). Returns
    the indices deleted. Names are resolved first: the cluster refuses wildcard deletes."""
    deleted: list[str] = []
    for name in names:
        found = list(client.indices.get(index=layout.pattern(name), allow_no_indices=True, expand_wildcards="all"))
        if found:
            client.indices.delete(index=",".join(found))
            deleted += found
        client.options(ignore_status=404).indices.delete_index_template(name=layout.template(name))
    if set(names) == set(NAMES):
        client.options(ignore_status=404).cluster.delete_component_template(name=layout.component())
    return deleted

