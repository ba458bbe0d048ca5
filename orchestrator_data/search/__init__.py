"""Search (on Elasticsearch): the client and health check. Indices, their sync from PostgreSQL and
their lifecycle are the next issues."""
