"""Redis: clients, health, and (to come) the keyspace of sessions, cache, limits and queues."""
