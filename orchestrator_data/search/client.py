"""The official Elasticsearch client (8.x, which also speaks to ES 9 through REST compatibility)."""

from __future__ import annotations

from elasticsearch import Elasticsearch

from orchestrator_data import urls
from orchestrator_data.health import ServiceHealth, failed, median_latency_ms, version_problem
from orchestrator_data.redaction import register_secret


def create_client(
    url: str | urls.ServiceUrl,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    request_timeout: float = 30.0,
    max_retries: int = 3,
) -> Elasticsearch:
    parsed = urls.parse_elasticsearch_url(url)
    register_secret(api_key)
    register_secret(password)
    register_secret(parsed.password)
    kwargs: dict = {
        "request_timeout": request_timeout,
        # elastic-transport retries connection errors and timeouts with backoff across nodes
        "max_retries": max_retries,
        "retry_on_timeout": True,
        "retry_on_status": (502, 503, 504),
    }
    if api_key:
        kwargs["api_key"] = api_key
    elif username:
        kwargs["basic_auth"] = (username, password or "")
    elif parsed.username or parsed.password:  # credentials in the URL, when none are set apart
        kwargs["basic_auth"] = (parsed.username or "", parsed.password or "")
    if ca_certs:
        kwargs["ca_certs"] = ca_certs
    # A hosts mapping from the parsed parts rather than the text, which urllib3 would parse again.
    node = {"scheme": parsed.scheme, "host": parsed.host,
            "port": parsed.port or (443 if parsed.scheme == "https" else 80),
            "path_prefix": parsed.path.rstrip("/")}
    return Elasticsearch(hosts=[node], **kwargs)


def check_health(client: Elasticsearch) -> ServiceHealth:
    try:
        info = client.info()
        health = client.cluster.health()
        latency = median_latency_ms(client.ping)
    except Exception as exc:  # noqa: BLE001
        return failed("elasticsearch", exc)
    version = info["version"]["number"]
    problem = version_problem("elasticsearch", version)
    if problem is None and health["status"] == "red":
        problem = "cluster health is red"
    return ServiceHealth(
        service="elasticsearch",
        ok=problem is None,
        version=version,
        latency_ms=latency,
        error=problem,
        detail={
            "cluster_name": health["cluster_name"],
            "cluster_status": health["status"],
            "nodes": health["number_of_nodes"],
            "active_shards": health["active_shards"],
            "unassigned_shards": health["unassigned_shards"],
            "pool_nodes": len(client.transport.node_pool.all()),
        },
    )
