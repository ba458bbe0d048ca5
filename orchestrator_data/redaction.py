"""Last line of defence: strip anything secret-looking from text that goes to a log or a screen.

Driver errors sometimes quote the connection string they failed on; this removes the password part
of any URL and any `password=...` pair before such text is shown."""

from __future__ import annotations

import re

# The password runs to the *last* '@' before whitespace: a raw '@', '/' or '?' in it (a URL that
# urls.parse_url would refuse) must not leave its tail visible.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>\S+)@")
_KEY_VALUE = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|api[_-]?key|secret|token|requirepass)(?P<sep>\s*[=:]\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;&]+)"
)
_known_secrets: set[str] = set()


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
