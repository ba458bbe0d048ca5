"""Redis: clients and health, and the keyspace: sessions, cache, rate limits, execution state,
queues and pub/sub, with its setup and status checks."""
