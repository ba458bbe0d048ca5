"""Printing for the CLI: rich tables for people, JSON for scripts, and nothing secret in either."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator_data.redaction import redact
from orchestrator_data.units import human_bytes  # noqa: F401 - the CLI modules print sizes through output

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

OK = "[green]✓[/green]"
FAIL = "[red]✗[/red]"
WARN = "[yellow]![/yellow]"  # not a failure, not fine either: mended by the next scheduled run


def print_json(payload) -> None:
    sys.stdout.write(redact(json.dumps(payload, indent=2, default=str)) + "\n")


def error(message: str) -> None:
    # escaped: messages quote servers' errors, whose [brackets] are not markup (Elasticsearch's reasons)
    err_console.print(f"[red]error:[/red] {escape(redact(message))}", markup=True, soft_wrap=True)


def note(message: str) -> None:
    """A side remark on stderr, so it never mixes into output a script parses (e.g. --json)."""
    err_console.print(redact(message), soft_wrap=True, markup=False)


def info(message: str) -> None:
    console.print(redact(message), soft_wrap=True)


def health_table(results, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("", "service", "version", "latency", "detail"):
        table.add_column(column)
    for health in results:
        mark = OK if health.ok else FAIL
        latency = f"{health.latency_ms:.2f} ms" if health.latency_ms is not None else "-"
        detail = redact(health.error) if health.error else _summary(health)
        table.add_row(mark, health.service, health.version or "-", latency, detail)
    return table


def _summary(health) -> str:
    d = health.detail
    if health.service == "postgres":
        return (f"db {d.get('database')} · {d.get('connections')}/{d.get('max_connections')} connections · "
                f"pool {d.get('pool_checked_out', 0)}/{d.get('pool_size')} in use · source {d.get('source')}")
    if health.service == "redis":
        hit_rate = d.get("cache_hit_rate")
        depths = ", ".join(f"{name} {q.get('length', 0)}/{q.get('pending', 0)} pending"
                           for name, q in (d.get("queues") or {}).items())
        return (f"{d.get('keys')} keys · {human_bytes(d.get('used_memory_bytes'))} used · "
                f"policy {d.get('maxmemory_policy')} · cache hit rate "
                f"{'-' if hit_rate is None else f'{hit_rate:.0%}'} · queues {depths or '-'} · source {d.get('source')}")
    return (f"cluster {d.get('cluster_name')} {d.get('cluster_status')} · {d.get('nodes')} node(s) · "
            f"source {d.get('source')}")


