"""Last line of defence: strip anything secret-looking from text that goes to a log or a screen.

Driver errors sometimes quote the connection string they failed on; this removes the password part
of any URL and any `password=...` pair before such text is shown."""

from __future__ import annotations

import re
import sys

# The password runs to the *last* '@' before whitespace: a raw '@', '/' or '?' in it (a URL that
# urls.parse_url would refuse) must not leave its tail visible.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>\S+)@")
_KEY_VALUE = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|api[_-]?key|secret|token|requirepass)(?P<sep>\s*[=:]\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;&]+)"
)
_known_secrets: set[str] = set()
# a failure's description is at most this long: a driver may quote a whole statement
ERROR_LIMIT = 2000


def register_secret(value: str | None) -> None:
    """Remember a secret so that `redact` removes it wherever it appears."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['sep']}***", text)
    for secret in sorted(_known_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def describe_error(exc: BaseException) -> str:
    """A one-paragraph, redacted description of a failure (the driver's message, not SQLAlchemy's
    wrapper with the statement and its parameters)."""
    # an SQLAlchemy error exists only once SQLAlchemy is imported: asking sys.modules keeps this
    # module (which the CLI loads at start) free of SQLAlchemy
    sa_exc = sys.modules.get("sqlalchemy.exc")
    original = getattr(exc, "orig", None) if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError) else None
    source = original or exc
    text = f"{type(source).__name__}: {source}".strip()
    return redact(text)[:ERROR_LIMIT]
