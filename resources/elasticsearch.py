"""Elasticsearch as a Dagster resource: the official client, retrying transient errors."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from elasticsearch import Elasticsearch
from pydantic import Field, PrivateAttr

from orchestrator_data import connections
from orchestrator_data.health import ServiceHealth
from orchestrator_data.provisioning import SearchTarget
from orchestrator_data.search import client
from orchestrator_data.search.indices import Layout
from orchestrator_data.search.snapshots import Repository, repository_of
from resources._base import SettingsResource


class ElasticsearchResource(SettingsResource):
    """Search and analytics indices. Leave `elasticsearch_url` unset to use ELASTICSEARCH_URL or the local
    stack; credentials left unset come from ELASTICSEARCH_API_KEY / _USERNAME / _PASSWORD / _CA_CERT."""

    elasticsearch_url: str | None = Field(None, description="http(s):// URL; set through dg.EnvVar('ELASTICSEARCH_URL').")
    api_key: str | None = Field(None, description="API key (dg.EnvVar('ELASTICSEARCH_API_KEY')).")
    username: str | None = Field(None, description="Basic-auth user.")
    password: str | None = Field(None, description="Basic-auth password (dg.EnvVar('ELASTICSEARCH_PASSWORD')).")
    ca_certs: str | None = Field(None, description="CA certificate file for https.")
    request_timeout: float = Field(30.0, description="Seconds per request.")
    max_retries: int = Field(3, description="Retries, with backoff, on connection errors, timeouts and 502/503/504.")
    index_prefix: str | None = Field(None, description="Prefix of every index, alias and template (default "
                                                       "SEARCH_INDEX_PREFIX).")
    shards: int | None = Field(None, description="Primary shards of new indices (default SEARCH_SHARDS).")
    replicas: int | None = Field(None, description="Replicas of new indices (default SEARCH_REPLICAS).")
    lifecycle_dir: str | None = Field(None, description="Directory whose <index>.json lifecycle policies replace "
                                                        "the package's (default SEARCH_LIFECYCLE_DIR).")
    snapshot_repository: str | None = Field(None, description="Snapshot repository (default SEARCH_SNAPSHOT_REPOSITORY, "
                                                              "else <prefix>-snapshots).")
    snapshot_location: str | None = Field(None, description="The fs repository's location, under the nodes' path.repo "
                                                            "(default SEARCH_SNAPSHOT_LOCATION, else the prefix).")
    snapshot_keep: int | None = Field(None, description="Successful snapshots kept (default SEARCH_SNAPSHOT_KEEP).")

    _client: Elasticsearch | None = PrivateAttr(None)

    def url(self) -> str:
        return self.elasticsearch_url or connections.resolve_url("elasticsearch", self.settings)

    @property
    def client(self) -> Elasticsearch:
        if self._client is None:
            self._client = connections.elasticsearch_client(
                self.settings, self.url(),
                credentials={"api_key": self.api_key, "username": self.username, "password": self.password,
                             "ca_certs": self.ca_certs},
                request_timeout=self.request_timeout, max_retries=self.max_retries,
            )
        return self._client

    def health(self) -> ServiceHealth:
        return self._health("elasticsearch", lambda: self.client, client.check_health)

    def layout(self) -> Layout:
        return Layout(self.index_prefix or self.settings.search_index_prefix)

    def lifecycle_directory(self) -> Path | None:
        return Path(self.lifecycle_dir) if self.lifecycle_dir else self.settings.search_lifecycle_dir

    def target(self) -> SearchTarget:
        """The cluster, the names and the shape of new indices, as init and reset take them."""
        return SearchTarget(self.client, self.layout(),
                            self.shards if self.shards is not None else self.settings.search_shards,
                            self.replicas if self.replicas is not None else self.settings.search_replicas)

    def snapshot_repository_of(self) -> Repository:
        return repository_of(self.settings, self.layout(), name=self.snapshot_repository,
                             location=self.snapshot_location)

    def snapshots_kept(self) -> int:
        return self.snapshot_keep if self.snapshot_keep is not None else self.settings.search_snapshot_keep

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
