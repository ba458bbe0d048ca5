"""The one reading of the service URLs: parsing, validation, masking and the drivers' forms.

Every parser in the stack splits a URL its own way: urllib takes the *last* '@' as the end of the
password, SQLAlchemy and libpq the *first*; urllib ends the host at '/', '?' or '#', SQLAlchemy's
password runs on to the '@'. A password holding one of those characters raw is therefore read
differently by each, and whatever one of them takes for the host ends up in its error messages.
So `parse_url` is the only parser that reads a configured URL: it refuses anything whose reading is
not the same for all of them (a raw '@', '/', '?', '#', '[' or ']' in the user name or password,
more than one '@', a fragment, a '+' in the query, a stray '%'), and every consumer builds its
driver object from the parsed `ServiceUrl` or from its canonical text (`render()`), in which every
character of the user name and password outside RFC 3986's unreserved set is percent-encoded, so
that any parser reads it exactly as `parse_url` did.

Every message raised here names what is wrong without echoing the value: a URL may carry a
password, and a malformed one may carry it in a place no parser recognises.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

import sqlalchemy as sa

from orchestrator_data.errors import BadInput

POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}
REDIS_SCHEMES = {"redis", "rediss", "unix"}
ELASTICSEARCH_SCHEMES = {"http", "https"}

_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
_CHANNEL_BINDING = {"disable", "prefer", "require"}
_SECRET_QUERY_KEYS = {"password", "pass", "passwd", "api_key", "apikey", "token", "secret"}
MASK = "***"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# RFC 3986: userinfo = *( unreserved / pct-encoded / sub-delims / ":" )
_USERINFO = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:%]*")
# A host name or IPv4 address (no percent-encoding, no sub-delims: no parser disagrees on these),
# or a bracketed IPv6 address.
_HOST = re.compile(r"[A-Za-z0-9\-._~]*")
_IPV6_HOSTPORT = re.compile(r"\[(?P<host>[0-9A-Fa-f:.]+)\](?::(?P<port>[^:]*))?")
# pchar and '/' less '@' (an '@' after the host is refused as ambiguous before this is checked)
_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:%/]*")
# query chars less '+' (a space to urllib and SQLAlchemy, a plus to libpq)
_QUERY = re.compile(r"[A-Za-z0-9\-._~!$&'()*,;=:%/?]*")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")

_AMBIGUOUS_AT = (
    "is ambiguous: it has more than one '@' or an '@' after the host, which drivers split in "
    "different places; percent-encode '@' in a user name or password as %40 (and '/' as %2F, "
    "'?' as %3F, '#' as %23)"
)


class InvalidUrl(BadInput, ValueError):
    """A URL that cannot be used; the message never contains the URL itself."""


@dataclass(frozen=True)
class ServiceUrl:
    """One URL as `parse_url` reads it. User name, password and query are decoded; `path` is kept
    as written (its percent-encoding validated), so that an encoded '/' in a name survives.

    `str()` and `repr()` never show the password: `render()` gives the canonical text for a driver.
    """

    scheme: str
    username: str | None
    password: str | None = field(repr=False)
    host: str | None
    port: int | None
    path: str = ""
    query: tuple[tuple[str, str], ...] = ()
    # libpq's multi-host form (`host1:5432,host2:5433`): the hosts after the first, tried in order
    more_hosts: tuple[tuple[str, int | None], ...] = ()

    @property
    def hosts(self) -> tuple[tuple[str | None, int | None], ...]:
        """Every (host, port) of the authority, in the order a client tries them."""
        return ((self.host, self.port), *self.more_hosts)

    def render(self, *, masked: bool = False) -> str:
        """The canonical text: every reserved character of the user name, password and query
        percent-encoded, so that urllib, SQLAlchemy, libpq, redis-py and urllib3 all read it alike."""
        userinfo = ""
        if self.username is not None or self.password is not None:
            userinfo = _encode(self.username or "")
            if self.password is not None:
                userinfo += ":" + (MASK if masked else _encode(self.password))
            userinfo += "@"
        hosts = ",".join(_hostport(host, port) for host, port in self.hosts)
        text = f"{self.scheme}://{userinfo}{hosts}{self.path}"
        if self.query:
            text += "?" + "&".join(
                f"{_encode(k, safe='/')}="
                + (MASK if masked and k.lower() in _SECRET_QUERY_KEYS else _encode(v, safe="/"))
                for k, v in self.query
            )
        return text

    def __str__(self) -> str:
        return self.render(masked=True)

    def replace(self, **changes) -> ServiceUrl:
        return dataclasses.replace(self, **changes)

    def param(self, key: str) -> str | None:
        """The last value of a query parameter (libpq's reading of a repeated one)."""
        values = [v for k, v in self.query if k == key]
        return values[-1] if values else None

    @property
    def database(self) -> str:
        """PostgreSQL's database name (the decoded path, else ?dbname=), or Redis's db number."""
        return unquote(self.path.removeprefix("/")) or self.param("dbname") or ""


def _hostport(host: str | None, port: int | None) -> str:
    shown = f"[{host}]" if host and ":" in host else (host or "")
    return shown + (f":{port}" if port is not None else "")


def _encode(value: str, safe: str = "") -> str:
    return quote(value, safe=safe)


def _decode(text: str, part: str) -> str:
    try:
        value = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidUrl(f"has a percent-encoded {part} that is not UTF-8") from None
    if "\x00" in value:
        raise InvalidUrl(f"has a percent-encoded NUL character in its {part}")
    return value


def _check_chars(text: str, allowed: re.Pattern, part: str, hint: str) -> None:
    if not allowed.fullmatch(text):
        raise InvalidUrl(f"has a character in its {part} that must be percent-encoded ({hint})")
    if _STRAY_PERCENT.search(text):
        raise InvalidUrl(f"has a '%' in its {part} that does not start a %XX escape (write '%' as %25)")


def parse_url(url: str, schemes: set[str] | None = None, what: str = "a URL") -> ServiceUrl:
    """Parse `url` the one way every consumer then shares, refusing any text that another parser
    could read differently. `schemes` limits the accepted schemes (None: any)."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidUrl("is empty")
    if any(ch.isspace() for ch in url):
        raise InvalidUrl("contains whitespace")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise InvalidUrl("contains a control character")
    if not url.isascii():
        # NFKC and IDNA turn some of these into '@', '/' or '.' in one parser and not in another
        raise InvalidUrl("contains a non-ASCII character; percent-encode it (UTF-8)")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidUrl(f"is not a URL (expected {what}, like {_example(schemes)})")
    if schemes is not None and scheme.lower() not in schemes:
        shown = scheme if _SCHEME.fullmatch(scheme) else "?"
        raise InvalidUrl(f"has scheme '{shown}', expected one of: {', '.join(sorted(schemes))}")
    if not _SCHEME.fullmatch(scheme):
        raise InvalidUrl("has a scheme that is not a URL scheme")
    if "#" in rest:
        raise InvalidUrl(
            "is ambiguous: it contains '#', which some drivers read as the end of the URL and others "
            "as part of it; percent-encode '#' in a password as %23"
        )
    authority = re.match(r"[^/?]*", rest).group()
    remainder = rest[len(authority):]
    path, qmark, query_text = remainder.partition("?")
    if "@" in remainder or authority.count("@") > 1:
        raise InvalidUrl(_AMBIGUOUS_AT)

    username = password = None
    if "@" in authority:
        userinfo, hostport = authority.split("@")
        _check_chars(userinfo, _USERINFO, "user name or password", "e.g. '[' as %5B, ']' as %5D")
        raw_user, colon, raw_password = userinfo.partition(":")
        username = _decode(raw_user, "user name")
        password = _decode(raw_password, "password") if colon else None
    else:
        hostport = authority
    # libpq's multi-host form: host1:port1,host2:port2 (a client tries them in order)
    parts = [_host_and_port(part) for part in hostport.split(",")] if "," in hostport else [_host_and_port(hostport)]
    if len(parts) > 1 and any(part[0] is None for part in parts):
        raise InvalidUrl("has an empty host in its list of hosts (host1:port1,host2:port2)")
    (host, port), more_hosts = parts[0], tuple(parts[1:])

    _check_chars(path, _PATH, "path", "e.g. '@' as %40")
    query: list[tuple[str, str]] = []
    if qmark:
        if "+" in query_text:
            raise InvalidUrl(
                "is ambiguous: its query has a '+', a space to some drivers and a plus to others; "
                "write %2B for a plus or %20 for a space"
            )
        _check_chars(query_text, _QUERY, "query", "e.g. '@' as %40")
        for pair in query_text.split("&"):
            if pair:
                key, _, value = pair.partition("=")
                query.append((_decode(key, "query"), _decode(value, "query")))
    return ServiceUrl(scheme=scheme.lower(), username=username, password=password, host=host, port=port,
                      path=path, query=tuple(query), more_hosts=more_hosts)


def _host_and_port(hostport: str) -> tuple[str | None, int | None]:
    if hostport.startswith("["):
        match = _IPV6_HOSTPORT.fullmatch(hostport)
        if not match:
            raise InvalidUrl("has a malformed [IPv6] host")
        host, port_text = match["host"], match["port"]
    else:
        host, colon, port_text = hostport.partition(":")
        if ":" in port_text:
            raise InvalidUrl("has more than one ':' in its host part (an IPv6 host goes in [brackets], "
                             "and a reserved character in a password must be percent-encoded)")
        if not colon:
            port_text = None
        if not _HOST.fullmatch(host):
            raise InvalidUrl("has a host that is not a single host name or IP address "
                             "(a reserved character in a password must be percent-encoded)")
    port = None
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise InvalidUrl("has a port that is not a number between 1 and 65535")
        port = int(port_text)
    return host or None, port


def _example(schemes: set[str] | None) -> str:
    if schemes is POSTGRES_SCHEMES:
        return "postgresql://user:password@host:5432/dbname"
    if schemes is REDIS_SCHEMES:
        return "redis://:password@host:6379/0"
    return "http://host:9200"


# -- the three services --------------------------------------------------------------------------
def parse_postgres_url(url: str | ServiceUrl) -> ServiceUrl:
    parsed = parse_url(url, POSTGRES_SCHEMES, "a PostgreSQL URL") if isinstance(url, str) else url
    if not parsed.host and not parsed.param("host"):
        raise InvalidUrl("has no host (give host:port, or ?host=/socket/dir for a Unix socket)")
    if not parsed.database:
        raise InvalidUrl("has no database name (postgresql://user@host:5432/<dbname>)")
    if parsed.more_hosts and parsed.param("host"):
        raise InvalidUrl("names its hosts twice: in host1,host2 and in ?host=; give them in one place")
    sslmode, channel_binding = parsed.param("sslmode"), parsed.param("channel_binding")
    if sslmode is not None and sslmode not in _SSLMODES:
        raise InvalidUrl(f"has an unknown sslmode; expected one of: {', '.join(sorted(_SSLMODES))}")
    if channel_binding is not None and channel_binding not in _CHANNEL_BINDING:
        raise InvalidUrl(
            f"has an unknown channel_binding; expected one of: {', '.join(sorted(_CHANNEL_BINDING))}"
        )
    return parsed


def _single_host(parsed: ServiceUrl) -> None:
    if parsed.more_hosts:
        raise InvalidUrl("has several hosts (a,b), which only a PostgreSQL URL may have")


def parse_redis_url(url: str | ServiceUrl) -> ServiceUrl:
    parsed = parse_url(url, REDIS_SCHEMES, "a Redis URL") if isinstance(url, str) else url
    _single_host(parsed)
    if parsed.scheme == "unix":
        if not parsed.path:
            raise InvalidUrl("is a unix:// URL without a socket path")
        return parsed
    if not parsed.host:
        raise InvalidUrl("has no host")
    db = parsed.path.removeprefix("/")
    if db and not db.isdigit():
        raise InvalidUrl("has a database number that is not a non-negative integer")
    return parsed


def parse_elasticsearch_url(url: str | ServiceUrl) -> ServiceUrl:
    parsed = parse_url(url, ELASTICSEARCH_SCHEMES, "an Elasticsearch URL") if isinstance(url, str) else url
    _single_host(parsed)
    if not parsed.host:
        raise InvalidUrl("has no host")
    if parsed.query:
        raise InvalidUrl("has a query string, which the Elasticsearch client has no use for")
    if parsed.username and ":" in parsed.username:
        raise InvalidUrl("has a ':' in its user name, which HTTP basic authentication cannot carry")
    return parsed


def validate_postgres_url(url: str) -> str:
    """The canonical text of a valid PostgreSQL URL (what settings keep)."""
    return parse_postgres_url(url).render()


def validate_redis_url(url: str) -> str:
    return parse_redis_url(url).render()


def validate_elasticsearch_url(url: str) -> str:
    return parse_elasticsearch_url(url).render()


def make_url(scheme: str, host: str, port: int | None = None, *, username: str | None = None,
             password: str | None = None, database: str | int | None = None) -> str:
    """A URL built from its parts (the local stack's), encoded so that `parse_url` reads back the
    same parts."""
    path = "" if database is None else "/" + _encode(str(database))
    return ServiceUrl(scheme=scheme, username=username, password=password, host=host, port=port,
                      path=path).render()


def mask_url(url: str | None) -> str | None:
    """The URL with its password (and any secret-looking query value) replaced by ***."""
    if url is None:
        return None
    try:
        return parse_url(url).render(masked=True)
    except InvalidUrl:
        scheme = url.partition("://")[0] if "://" in url else ""
        return f"<unparseable {scheme} URL>" if _SCHEME.fullmatch(scheme) else "<unparseable URL>"


# -- driver forms ---------------------------------------------------------------------------------
def with_scheme(url: str | ServiceUrl, scheme: str) -> str:
    """The same PostgreSQL URL for a given SQLAlchemy driver (postgres:// is libpq's alias)."""
    return parse_postgres_url(url).replace(scheme=scheme).render()


def sqlalchemy_postgres_url(url: str | ServiceUrl) -> str:
    """psycopg 3 for the project's own engines."""
    return with_scheme(url, "postgresql+psycopg")


def dagster_postgres_url(url: str | ServiceUrl) -> str:
    """psycopg2 for dagster-postgres, which breaks on psycopg 3 (docs/architecture.md, pitfalls)."""
    return with_scheme(url, "postgresql+psycopg2")


def libpq_url(url: str | ServiceUrl) -> str:
    """A URL libpq tools (pg_dump, psql) accept: plain postgresql://."""
    return with_scheme(url, "postgresql")


def sqlalchemy_url(url: str | ServiceUrl, drivername: str = "postgresql+psycopg") -> sa.engine.URL:
    """SQLAlchemy's URL object built from the parsed parts, so that SQLAlchemy never parses the text."""
    parsed = parse_postgres_url(url)
    values: dict[str, list[str]] = {}
    for key, value in parsed.query:
        values.setdefault(key, []).append(value)
    host, port = parsed.host, parsed.port
    if parsed.more_hosts:
        # SQLAlchemy's psycopg dialects take several hosts as ?host=a,b&port=1,2 and hand libpq exactly
        # that (its multi-host form); not as repeated host=a:1, which splits an IPv6 address at its ':'
        values["host"] = [",".join(h or "" for h, _ in parsed.hosts)]
        if any(p is not None for _, p in parsed.hosts):
            values["port"] = [",".join("" if p is None else str(p) for _, p in parsed.hosts)]
        host = port = None
    query = {key: found[0] if len(found) == 1 else tuple(found) for key, found in values.items()}
    return sa.engine.URL.create(
        drivername, username=parsed.username or None, password=parsed.password, host=host,
        port=port, database=unquote(parsed.path.removeprefix("/")) or None, query=query,
    )


def replace_database(url: str | ServiceUrl, database: str) -> str:
    return parse_postgres_url(url).replace(path="/" + _encode(database)).render()


def database_name(url: str | ServiceUrl) -> str:
    return parse_postgres_url(url).database
