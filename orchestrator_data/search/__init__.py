"""Elasticsearch: clients, health, and (to come) indices, sync and lifecycle."""
