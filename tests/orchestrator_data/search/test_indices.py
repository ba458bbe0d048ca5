"""The five indices on the real node: definitions from the data files, templates, aliases, idempotence."""

from __future__ import annotations

import json

import pytest

from orchestrator_data.search import indices
from orchestrator_data.search.errors import InvalidDefinition, SearchError, UnknownIndex
from orchestrator_data.search.indices import NAMES, Layout

pytestmark = pytest.mark.integration


def test_every_definition_loads_with_a_version_and_the_tenant_field():
    found = indices.definitions()
    assert set(found) == set(NAMES)
    common = indices.common_definition()
    assert common.mappings["properties"]["organization_id"] == {"type": "keyword"}
    for definition in found.values():
        assert definition.version >= 1 and definition.mappings["properties"]


def test_a_malformed_definition_is_refused_naming_the_file_and_field(monkeypatch):
    monkeypatch.setattr(indices, "_load", lambda file_name: {"name": "workflows", "version": 0, "mappings": {}})
    with pytest.raises(InvalidDefinition, match=r"search/indices/workflows.json: 'version'"):
        indices.definition("workflows")
    monkeypatch.setattr(indices, "_load", lambda file_name: {"name": "workflows", "version": 1,
                                                             "mappings": {"properties": {}},
                                                             "settings": {"number_of_replicas": 2}})
    with pytest.raises(InvalidDefinition, match="SEARCH_REPLICAS"):
        indices.definition("workflows")
    with pytest.raises(UnknownIndex, match="unknown index 'nope'"):
        indices.definition("nope")
    with pytest.raises(SearchError):
        Layout(prefix="Bad Prefix")


def test_init_creates_templates_indices_and_aliases_idempotently(es, layout):
    first = indices.init_indices(es, layout)
    assert [r.name for r in first] == list(NAMES) and all(r.created for r in first)
    for result in first:
        name = result.name
        assert result.write_index == layout.backing(name, result.mapping_version)
        aliases = es.indices.get_alias(index=result.write_index)[result.write_index]["aliases"]
        assert aliases == {layout.read_alias(name): {}, layout.write_alias(name): {"is_write_index": True}}
        settings = es.indices.get_settings(index=result.write_index)[result.write_index]["settings"]["index"]
        assert (settings["number_of_shards"], settings["number_of_replicas"]) == ("1", "0")
        mapping = es.indices.get_mapping(index=result.write_index)[result.write_index]["mappings"]
        assert mapping["_meta"]["mapping_version"] == result.mapping_version
        assert mapping["properties"]["organization_id"] == {"type": "keyword"}
        assert mapping["dynamic"] == "strict"
    assert es.cluster.health(index=f"{layout.prefix}-*")["status"] == "green"

    again = indices.init_indices(es, layout)
    assert not any(r.created for r in again)
    assert [r.write_index for r in again] == [r.write_index for r in first]
    status = indices.index_status(es, layout, "workflows")
    assert status.exists and status.backing_indices == [first[0].write_index] and status.documents == 0
    assert not indices.index_status(es, Layout(prefix=layout.prefix + "x"), "workflows").exists


def test_documents_outside_the_mapping_are_refused(es, layout):
    indices.init_indices(es, layout, ("workflows",))
    es.index(index=layout.write_alias("workflows"), id="1", document={"organization_id": "o", "name": "Demo flow"},
             refresh=True)
    with pytest.raises(Exception, match="strict_dynamic_mapping_exception"):
        es.index(index=layout.write_alias("workflows"), id="2", document={"organization_id": "o", "secret": "x"})
    hit = es.search(index=layout.read_alias("workflows"), query={"term": {"name.keyword": "DEMO FLOW".lower()}})
    assert hit["hits"]["total"]["value"] == 1
    assert json.dumps(hit["hits"]["hits"][0]["_source"]) == json.dumps({"organization_id": "o", "name": "Demo flow"})
