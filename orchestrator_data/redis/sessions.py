"""Sessions `session:{sessionId}` with a sliding idle TTL under an absolute lifetime, and the per-user
index `user_sessions:{userId}` that makes "sign out everywhere" exact.

Every write is one script, so a session and the index never disagree: a session created before a
revoke-all is in the index the revoke-all reads, and one created after it is a new sign-in. Session
ids are 256-bit random tokens; the key holds them, so keys of this pattern are never shown
(`KeyPattern.sensitive`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime

import redis

from orchestrator_data.redis._codec import LUA_PRELUDE, from_ms, pairs, text
from orchestrator_data.redis.errors import translated
from orchestrator_data.redis.keyspace import SESSION, USER_SESSIONS

DEFAULT_IDLE_TTL = 24 * 3600
DEFAULT_MAX_LIFETIME = 7 * 24 * 3600

# KEYS: session, index. ARGV: session id, user id, data, idle ms, lifetime ms, session key prefix.
CREATE_LUA = LUA_PRELUDE + """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('ERR session id already exists') end
local now = now_ms()
local idle, lifetime = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'user_id', ARGV[2], 'created_at', int(now), 'last_seen_at', int(now),
           'expires_at', int(now + lifetime), 'data', ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.min(idle, lifetime))
-- forget ids of sessions that expired on their own, so the index stays the size of the live set
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[6] .. id) == 0 then redis.call('SREM', KEYS[2], id) end
end
redis.call('SADD', KEYS[2], ARGV[1])
-- the index outlives every session in it: no session lives past its absolute lifetime
if redis.call('PTTL', KEYS[2]) < lifetime then redis.call('PEXPIRE', KEYS[2], lifetime) end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: session. ARGV: idle ms, new data or '' to keep it, '1' when data is given.
TOUCH_LUA = LUA_PRELUDE + """
local expires = redis.call('HGET', KEYS[1], 'expires_at')
if not expires then return false end
local now = now_ms()
local left = tonumber(expires) - now
if left <= 0 then redis.call('DEL', KEYS[1]) return false end
redis.call('HSET', KEYS[1], 'last_seen_at', int(now))
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'data', ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), left))
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: session. ARGV: session id, index key prefix.
REVOKE_LUA = """
local user = redis.call('HGET', KEYS[1], 'user_id')
local removed = redis.call('DEL', KEYS[1])
if user then redis.call('SREM', ARGV[2] .. user, ARGV[1]) end
return removed
"""

# KEYS: index. ARGV: session key prefix.
REVOKE_USER_LUA = """
local removed = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  removed = removed + redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1])
return removed
"""

SCRIPTS = {"sessions.create": CREATE_LUA, "sessions.touch": TOUCH_LUA, "sessions.revoke": REVOKE_LUA,
           "sessions.revoke_user": REVOKE_USER_LUA}


@dataclass(frozen=True)
class Session:
    id: str = field(repr=False)  # a bearer token: kept out of reprs and logs
    user_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime  # the absolute end; the idle TTL may end it sooner
    data: dict

    @classmethod
    def from_hash(cls, session_id: str, values: dict[str, str]) -> Session | None:
        """The session a hash holds; None for an empty or malformed one (not written by this store)."""
        try:
            return cls(id=session_id, user_id=values["user_id"], created_at=from_ms(values["created_at"]),
                       last_seen_at=from_ms(values["last_seen_at"]), expires_at=from_ms(values["expires_at"]),
                       data=json.loads(values.get("data") or "{}"))
        except (KeyError, ValueError, TypeError):
            return None


class SessionStore:
    """Create, read, touch and revoke sessions. `idle_ttl`: seconds without a touch before a session
    ends; `max_lifetime`: seconds after creation when it ends regardless."""

    def __init__(self, client: redis.Redis, idle_ttl: float = DEFAULT_IDLE_TTL,
                 max_lifetime: float = DEFAULT_MAX_LIFETIME):
        if idle_ttl <= 0 or max_lifetime <= 0:
            raise ValueError("idle_ttl and max_lifetime must be positive")
        self.client = client
        self.idle_ms = int(idle_ttl * 1000)
        self.lifetime_ms = int(max_lifetime * 1000)
        self._create = client.register_script(CREATE_LUA)
        self._touch = client.register_script(TOUCH_LUA)
        self._revoke = client.register_script(REVOKE_LUA)
        self._revoke_user = client.register_script(REVOKE_USER_LUA)

    def create(self, user_id: str | int, data: dict | None = None) -> Session:
        session_id = secrets.token_urlsafe(32)
        with translated("create session"):
            values = self._create(
                keys=[SESSION.key(session_id=session_id), USER_SESSIONS.key(user_id=user_id)],
                args=[session_id, str(user_id), json.dumps(data or {}), self.idle_ms, self.lifetime_ms,
                      SESSION.prefix])
        return Session.from_hash(session_id, pairs(values))

    def get(self, session_id: str) -> Session | None:
        """The session as stored, without sliding its TTL; None when it ended or never existed."""
        key = self._key(session_id)
        if key is None:
            return None
        with translated("read session"):
            values = self.client.hgetall(key)
        return Session.from_hash(session_id, {text(k): text(v) for k, v in values.items()})

    def touch(self, session_id: str, data: dict | None = None) -> Session | None:
        """Record activity: slide the idle TTL (never past the absolute lifetime), optionally replace
        the data. None when the session has ended."""
        key = self._key(session_id)
        if key is None:
            return None
        with translated("touch session"):
            values = self._touch(keys=[key], args=[self.idle_ms, json.dumps(data) if data is not None else "",
                                                   "1" if data is not None else "0"])
        return Session.from_hash(session_id, pairs(values)) if values else None

    def ttl(self, session_id: str) -> float | None:
        """Seconds until the session ends if not touched; None when it has ended."""
        key = self._key(session_id)
        if key is None:
            return None
        with translated("read session TTL"):
            ms = self.client.pttl(key)
        return ms / 1000 if ms >= 0 else None

    def revoke(self, session_id: str) -> bool:
        key = self._key(session_id)
        if key is None:
            return False
        with translated("revoke session"):
            return bool(self._revoke(keys=[key], args=[session_id, USER_SESSIONS.prefix]))

    def revoke_user(self, user_id: str | int) -> int:
        """End every session of a user ("sign out everywhere"); returns how many were live."""
        with translated("revoke the user's sessions"):
            return int(self._revoke_user(keys=[USER_SESSIONS.key(user_id=user_id)], args=[SESSION.prefix]))

    def list_user(self, user_id: str | int) -> list[Session]:
        with translated("list the user's sessions"):
            ids = sorted(text(m) for m in self.client.smembers(USER_SESSIONS.key(user_id=user_id)))
            pipe = self.client.pipeline(transaction=False)
            for session_id in ids:
                pipe.hgetall(SESSION.key(session_id=session_id))
            found = pipe.execute() if ids else []
        sessions = (Session.from_hash(sid, {text(k): text(v) for k, v in values.items()})
                    for sid, values in zip(ids, found))
        return [session for session in sessions if session is not None]

    @staticmethod
    def _key(session_id: str) -> str | None:
        # a malformed id (from a cookie) is simply not a session, not an error
        try:
            return SESSION.key(session_id=session_id)
        except ValueError:
            return None
