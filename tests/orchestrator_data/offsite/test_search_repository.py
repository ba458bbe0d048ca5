"""The Elasticsearch `s3` snapshot repository built from the OFFSITE_* settings, and the clear refusal on
a cluster without the repository-s3 module — the local node, which has none."""

from __future__ import annotations

import pytest
from elasticsearch import ApiError

from orchestrator_data.errors import exit_code
from orchestrator_data.offsite import config, search_repository
from orchestrator_data.offsite.errors import OffsiteRefused
from orchestrator_data.settings import load_settings


def _config(monkeypatch, **env):
    values = {"OFFSITE_BUCKET": "backups-eu", "OFFSITE_PREFIX": "/prod/data/", "OFFSITE_ENDPOINT_URL":
              "https://s3.example.net:9000", "OFFSITE_ACCESS_KEY_ID": "AKIAEXAMPLE",
              "OFFSITE_SECRET_ACCESS_KEY": "s3cr3t-value-never-shown", **env}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return config.from_settings(load_settings())


def test_the_repository_and_its_node_settings_come_from_the_offsite_settings(monkeypatch):
    store = _config(monkeypatch)
    body = search_repository.repository_body(store)
    assert body == {"type": "s3", "settings": {"bucket": "backups-eu", "base_path": "prod/data/search-snapshots",
                                               "client": "default"}}
    assert search_repository.node_settings(store) == {
        "s3.client.default.endpoint": "s3.example.net:9000", "s3.client.default.protocol": "https",
        "s3.client.default.path_style_access": "true"}
    assert search_repository.KEYSTORE_ENTRIES == ("s3.client.default.access_key", "s3.client.default.secret_key")
    text = repr(body) + repr(search_repository.node_settings(store)) + repr(store)
    assert "s3cr3t" not in text and "AKIAEXAMPLE" not in text
    # AWS itself: no endpoint to set on the nodes
    assert search_repository.node_settings(_config(monkeypatch, OFFSITE_ENDPOINT_URL="")) == {}


@pytest.mark.integration
def test_the_local_node_has_no_s3_repository_type_and_says_so(es, monkeypatch):
    assert search_repository.nodes_without_s3(es)  # the local node lacks repository-s3
    with pytest.raises(OffsiteRefused, match="no `s3` snapshot repository type: node") as refused:
        search_repository.register(es, "od-offsite-test", _config(monkeypatch))
    assert "repository-s3" in refused.value.one_line() and exit_code(refused.value) == 2
    # what the node itself answers to such a repository, the reason for asking it first
    with pytest.raises(ApiError) as raw:
        es.snapshot.create_repository(name="od-offsite-test", repository=search_repository.repository_body(_config(monkeypatch)))
    assert "[s3]" in str(raw.value)


def test_offsite_settings_are_checked_and_the_secret_never_shows(monkeypatch):
    from orchestrator_data.settings import SettingsError

    store = _config(monkeypatch)
    assert store.prefix == "prod/data/" and store.endpoint_url == "https://s3.example.net:9000"
    assert "s3cr3t" not in repr(store) and "s3cr3t" not in store.where
    for variable, value, says in (
            ("OFFSITE_ENDPOINT_URL", "https://AKIA:s3cr3t-value-never-shown@s3.example.net", "must not carry credentials"),
            ("OFFSITE_ENDPOINT_URL", "ftp://s3.example.net", "http:// or https://"),
            ("OFFSITE_ENDPOINT_URL", "https://s3.example.net/bucket?x=1", "bare endpoint"),
            ("OFFSITE_BUCKET", "Not_A_Bucket", "invalid"),
            ("OFFSITE_PART_SIZE_MB", "4", "invalid")):
        monkeypatch.setenv(variable, value)
        with pytest.raises(SettingsError) as refused:
            load_settings()
        assert refused.value.variable == variable and says in str(refused.value), str(refused.value)
        assert "s3cr3t" not in str(refused.value)
        monkeypatch.delenv(variable)
    monkeypatch.setenv("OFFSITE_BUCKET", "")
    assert config.from_settings(load_settings()) is None
