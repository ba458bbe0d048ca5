"""Figures as a person reads and writes them: bytes in binary units, and the time and size values of
Elasticsearch's own notation (`30d`, `50gb`) that policy files use."""

from __future__ import annotations

import re

_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_BYTES = {"b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3, "tb": 1024 ** 4, "pb": 1024 ** 5}


def human_bytes(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def parse_time(text: str) -> float:
    """'30d' -> seconds. The units Elasticsearch's time values use: d, h, m, s, ms."""
    match = re.fullmatch(r"(\d+)(d|h|m|s|ms)", text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError("a time like 30d, 12h, 90m, 45s (whole number, unit d, h, m, s or ms)")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def parse_bytes(text: str) -> int:
    """'30gb' -> bytes (binary multiples, as Elasticsearch reads them)."""
    match = re.fullmatch(r"(\d+)(b|kb|mb|gb|tb|pb)", text.strip().lower()) if isinstance(text, str) else None
    if not match:
        raise ValueError("a size like 50gb, 500mb, 1024kb (whole number, unit b, kb, mb, gb, tb or pb)")
    return int(match.group(1)) * _BYTES[match.group(2)]


def show(kind: str, value: float | None) -> str:
    """A measured or threshold value as a person reads it; `kind` is "time", "bytes" or "count"."""
    if value is None:
        return "-"
    if kind == "time":
        for unit in ("d", "h", "m"):
            if value >= _SECONDS[unit]:
                return f"{value / _SECONDS[unit]:.1f}{unit}"
        return f"{value:.0f}s"
    if kind == "bytes":
        for unit in ("tb", "gb", "mb", "kb"):
            if value >= _BYTES[unit]:
                return f"{value / _BYTES[unit]:.1f}{unit}"
        return f"{value:.0f}b"
    return f"{value:,.0f}"
