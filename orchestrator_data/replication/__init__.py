"""Replication: the standby beside the primary, observed, followed by the clients, and failed over to."""
