"""Validation, masking and driver-specific forms of the service URLs.

Every message raised here names what is wrong without echoing the value: a URL may carry a
password, and a malformed one may carry it in a place no parser recognises.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}
REDIS_SCHEMES = {"redis", "rediss", "unix"}
ELASTICSEARCH_SCHEMES = {"http", "https"}

_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
_CHANNEL_BINDING = {"disable", "prefer", "require"}
_SECRET_QUERY_KEYS = {"password", "pass", "passwd", "api_key", "apikey", "token", "secret"}
MASK = "***"


class InvalidUrl(ValueError):
    """A URL that cannot be used; the message never contains the URL itself."""


def _split(url: str, schemes: set[str], what: str):
    if not isinstance(url, str) or not url.strip():
        raise InvalidUrl("is empty")
    if any(ch.isspace() for ch in url):
        raise InvalidUrl("contains whitespace")
    if "://" not in url:
        raise InvalidUrl(f"is not a URL (expected {what}, like {_example(schemes)})")
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes:
        shown = parts.scheme if parts.scheme.replace("+", "").isalnum() else "?"
        raise InvalidUrl(f"has scheme '{shown}', expected one of: {', '.join(sorted(schemes))}")
    try:
        port = parts.port
    except ValueError:
        raise InvalidUrl("has a port that is not a number between 1 and 65535") from None
    if port is not None and not 1 <= port <= 65535:
        raise InvalidUrl("has a port that is not a number between 1 and 65535")
    return parts


def _example(schemes: set[str]) -> str:
    if schemes is POSTGRES_SCHEMES:
        return "postgresql://user:password@host:5432/dbname"
    if schemes is REDIS_SCHEMES:
        return "redis://:password@host:6379/0"
    return "http://host:9200"


def validate_postgres_url(url: str) -> str:
    parts = _split(url, POSTGRES_SCHEMES, "a PostgreSQL URL")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if not parts.hostname and not query.get("host"):
        raise InvalidUrl("has no host (give host:port, or ?host=/socket/dir for a Unix socket)")
    database = parts.path.lstrip("/")
    if not database and not query.get("dbname"):
        raise InvalidUrl("has no database name (postgresql://user@host:5432/<dbname>)")
    if "sslmode" in query and query["sslmode"] not in _SSLMODES:
        raise InvalidUrl(f"has an unknown sslmode; expected one of: {', '.join(sorted(_SSLMODES))}")
    if "channel_binding" in query and query["channel_binding"] not in _CHANNEL_BINDING:
        raise InvalidUrl(
            f"has an unknown channel_binding; expected one of: {', '.join(sorted(_CHANNEL_BINDING))}"
        )
    return url


def validate_redis_url(url: str) -> str:
    parts = _split(url, REDIS_SCHEMES, "a Redis URL")
    if parts.scheme == "unix":
        if not parts.path:
            raise InvalidUrl("is a unix:// URL without a socket path")
        return url
    if not parts.hostname:
        raise InvalidUrl("has no host")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise InvalidUrl("has a database number that is not a non-negative integer")
    return url


def validate_elasticsearch_url(url: str) -> str:
    parts = _split(url, ELASTICSEARCH_SCHEMES, "an Elasticsearch URL")
    if not parts.hostname:
        raise InvalidUrl("has no host")
    return url


def mask_url(url: str | None) -> str | None:
    """The URL with its password (and any secret-looking query value) replaced by ***."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hostinfo = netloc.rsplit("@", 1)
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                netloc = f"{user}:{MASK}@{hostinfo}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, MASK if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="/*"
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return f"<unparseable {urlsplit(url).scheme or ''} URL>"


def with_scheme(url: str, scheme: str) -> str:
    """The same PostgreSQL URL for a given SQLAlchemy driver (postgres:// is libpq's alias)."""
    parts = urlsplit(url)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def sqlalchemy_postgres_url(url: str) -> str:
    """psycopg 3 for the project's own engines."""
    return with_scheme(url, "postgresql+psycopg")


def dagster_postgres_url(url: str) -> str:
    """psycopg2 for dagster-postgres, which breaks on psycopg 3 (docs/architecture.md, pitfalls)."""
    return with_scheme(url, "postgresql+psycopg2")


def libpq_url(url: str) -> str:
    """A URL libpq tools (pg_dump, psql) accept: plain postgresql://."""
    return with_scheme(url, "postgresql")


def replace_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(database), parts.query, parts.fragment))


def database_name(url: str) -> str:
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    return name or dict(parse_qsl(parts.query)).get("dbname", "")
