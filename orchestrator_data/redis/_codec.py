"""Small conversions shared by the stores: clients may or may not decode responses."""

from __future__ import annotations

from datetime import datetime, timezone

# Lua helpers prepended to the scripts: server time, and numbers written as plain integers (Lua's
# tostring would write large ones in exponent form).
LUA_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(n) return string.format('%.0f', n) end
"""


def text(value) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def text_dict(mapping) -> dict[str, str]:
    return {text(k): text(v) for k, v in (mapping or {}).items()}


def pairs(flat) -> dict[str, str]:
    """A Lua HGETALL reply (a flat list) as a dict."""
    items = [text(v) for v in flat or []]
    return dict(zip(items[::2], items[1::2]))


def from_ms(value) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)
