"""Elasticsearch as a Dagster resource: the official client, retrying transient errors."""

from __future__ import annotations

import dagster as dg
from elasticsearch import Elasticsearch
from pydantic import Field, PrivateAttr

from orchestrator_data.connections import ServiceNotConfigured, elasticsearch_credentials, resolve_url
from orchestrator_data.health import ServiceHealth
from orchestrator_data.search import client
from orchestrator_data.settings import load_settings


class ElasticsearchResource(dg.ConfigurableResource):
    """Search and analytics indices. Leave `elasticsearch_url` unset to use the local stack."""

    elasticsearch_url: str | None = Field(None, description="http(s):// URL; set through dg.EnvVar('ELASTICSEARCH_URL').")
    api_key: str | None = Field(None, description="API key (dg.EnvVar('ELASTICSEARCH_API_KEY')).")
    username: str | None = Field(None, description="Basic-auth user.")
    password: str | None = Field(None, description="Basic-auth password (dg.EnvVar('ELASTICSEARCH_PASSWORD')).")
    ca_certs: str | None = Field(None, description="CA certificate file for https.")
    request_timeout: float = Field(30.0, description="Seconds per request.")
    max_retries: int = Field(3, description="Retries, with backoff, on connection errors, timeouts and 502/503/504.")

    _client: Elasticsearch | None = PrivateAttr(None)

    def url(self) -> str:
        return self.elasticsearch_url or resolve_url("elasticsearch", load_settings())

    @property
    def client(self) -> Elasticsearch:
        if self._client is None:
            # unset fields fall back to the settings (environment and .env files)
            settings = load_settings()
            configured = {"api_key": self.api_key, "username": self.username, "password": self.password,
                          "ca_certs": self.ca_certs}
            credentials = elasticsearch_credentials(settings) | {k: v for k, v in configured.items() if v}
            self._client = client.create_client(
                self.elasticsearch_url or resolve_url("elasticsearch", settings), **credentials,
                request_timeout=self.request_timeout, max_retries=self.max_retries,
            )
        return self._client

    def health(self) -> ServiceHealth:
        try:
            target = self.client
        except ServiceNotConfigured as exc:
            return ServiceHealth(service="elasticsearch", ok=False, error=str(exc))
        return client.check_health(target)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

