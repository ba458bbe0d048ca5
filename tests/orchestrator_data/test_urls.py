from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

import pytest
import sqlalchemy as sa

from orchestrator_data import urls
from orchestrator_data.redaction import redact, register_secret
from tests.credentials import RAW_REFUSED, leaks


def test_mask_url_hides_password_only():
    masked = urls.mask_url("postgresql://owner:pa%40ss@db.example:5432/app?sslmode=require")
    assert masked == "postgresql://owner:***@db.example:5432/app?sslmode=require"
    assert urls.mask_url("redis://:hunter22@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert urls.mask_url("http://127.0.0.1:9200") == "http://127.0.0.1:9200"


def test_mask_url_hides_secret_query_values():
    masked = urls.mask_url("postgresql://db/app?password=topsecret&sslmode=require")
    assert "topsecret" not in masked and "sslmode=require" in masked


def test_driver_forms_keep_everything_but_the_scheme():
    neon = "postgres://u:p@ep-x.neon.tech/neondb?sslmode=require&channel_binding=require"
    assert urls.sqlalchemy_postgres_url(neon) == (
        "postgresql+psycopg://u:p@ep-x.neon.tech/neondb?sslmode=require&channel_binding=require")
    assert urls.dagster_postgres_url(neon).startswith("postgresql+psycopg2://u:p@ep-x.neon.tech/neondb?")
    assert urls.libpq_url("postgresql+psycopg://u:p@h/d") == "postgresql://u:p@h/d"
    assert urls.replace_database("postgresql://u:p@h:1/d?x=1", "scratch") == "postgresql://u:p@h:1/scratch?x=1"
    assert urls.database_name("postgresql://u:p@h:1/app") == "app"


def test_unix_socket_postgres_url_is_valid():
    assert urls.validate_postgres_url("postgresql://postgres:@/postgres?host=/tmp/pg")


@pytest.mark.parametrize("url", ["", "   ", "postgresql://u:p@h:5432/d b"])
def test_empty_or_spaced_urls_are_refused(url):
    with pytest.raises(urls.InvalidUrl):
        urls.validate_postgres_url(url)


def test_redact_removes_url_passwords_pairs_and_registered_secrets():
    register_secret("registered-secret-value")
    text = ('connection to "postgresql://app:hunter2@db:5432/x" failed; password=abc123 '
            'and registered-secret-value too')
    cleaned = redact(text)
    assert "hunter2" not in cleaned and "abc123" not in cleaned and "registered-secret-value" not in cleaned
    assert "postgresql://app:***@db:5432/x" in cleaned


# -- one reading for every parser ----------------------------------------------------------------
# Each reserved character a password may hold, alone and all together.
RESERVED = ["@", ":", "/", "?", "#", "%", "[", "]"]
PASSWORDS = [f"Zq9{ch}Kx7w" for ch in RESERVED] + ["Zq9@:/?#%[]Kx7w", "a b&c=d+e'f\"g\\h^i`j{k}l|m<n>o"]
URL_KINDS = {
    "postgres": ("postgresql://{user}:{password}@db.example:5432/app?sslmode=require", urls.parse_postgres_url),
    "redis": ("redis://{user}:{password}@cache.example:6379/3", urls.parse_redis_url),
    "elasticsearch": ("https://{user}:{password}@search.example:9243", urls.parse_elasticsearch_url),
}


def third_party_readings(kind: str, text: str) -> list[tuple[str | None, str | None, str | None]]:
    """(user, password, host) as each library a consumer hands the text to reads it."""
    import base64

    from elastic_transport.client_utils import url_to_node_config
    from psycopg.conninfo import conninfo_to_dict
    from redis.connection import parse_url as redis_parse_url
    from sqlalchemy import make_url

    split = urlsplit(text)
    readings = [(unquote(split.username), unquote(split.password), split.hostname)]
    if kind == "postgres":
        sa_url = make_url(text)
        readings.append((sa_url.username, sa_url.password, sa_url.host))
        libpq = conninfo_to_dict(urls.libpq_url(text))  # libpq's own parser
        readings.append((libpq["user"], libpq["password"], libpq["host"]))
    elif kind == "redis":
        kwargs = redis_parse_url(text)
        readings.append((kwargs["username"], kwargs["password"], kwargs["host"]))
    else:
        node = url_to_node_config(text)
        user, _, password = base64.b64decode(node.headers["authorization"].split()[1]).decode().partition(":")
        readings.append((user, password, node.host))
    return readings


@pytest.mark.parametrize("kind", sorted(URL_KINDS))
@pytest.mark.parametrize("password", PASSWORDS)
def test_encoded_reserved_characters_are_read_alike_by_every_parser(kind, password):
    template, parse = URL_KINDS[kind]
    user = "us@er/1"  # (a ':' in a user name: see the Elasticsearch test below)
    parsed = parse(template.format(user=quote(user, safe=""), password=quote(password, safe="")))
    assert (parsed.username, parsed.password) == (user, password)
    canonical = parsed.render()
    assert parse(canonical) == parsed  # the canonical text reads back the same
    for reading in third_party_readings(kind, canonical):
        assert reading == (user, password, parsed.host)
    assert password not in str(parsed) and password not in repr(parsed)
    assert urls.mask_url(canonical) == canonical.replace(quote(password, safe=""), urls.MASK)


@pytest.mark.parametrize("kind", sorted(URL_KINDS))
@pytest.mark.parametrize("char", RAW_REFUSED)
def test_a_raw_reserved_character_in_the_password_is_refused_without_echoing_it(kind, char):
    template, parse = URL_KINDS[kind]
    password = f"Zq9{char}Kx7wSecretish"
    with pytest.raises(urls.InvalidUrl) as caught:
        parse(template.format(user="app", password=password))
    assert leaks(str(caught.value), password) == []
    assert urls.mask_url(template.format(user="app", password=password)).startswith("<unparseable")


@pytest.mark.parametrize("kind", sorted(URL_KINDS))
def test_a_raw_colon_in_the_password_has_one_reading(kind):
    template, parse = URL_KINDS[kind]
    parsed = parse(template.format(user="app", password="pa:ss:word"))
    assert (parsed.username, parsed.password) == ("app", "pa:ss:word")
    for reading in third_party_readings(kind, parsed.render()):
        assert reading == ("app", "pa:ss:word", parsed.host)


def test_a_colon_in_a_user_name_is_kept_where_the_protocol_can_carry_it():
    assert urls.parse_postgres_url("postgresql://a%3Ab:pw@db/app").username == "a:b"
    assert urls.parse_redis_url("redis://a%3Ab:pw@cache/0").username == "a:b"
    with pytest.raises(urls.InvalidUrl, match="basic authentication"):  # RFC 7617: user-id has no ':'
        urls.parse_elasticsearch_url("https://a%3Ab:pw@search:9200")


@pytest.mark.parametrize("raw", ["Zq9%Kx", "Zq9%zzKx", "Zq9Kx%4"])
def test_a_percent_that_starts_no_escape_is_refused(raw):
    with pytest.raises(urls.InvalidUrl, match="%25"):
        urls.parse_postgres_url(f"postgresql://app:{raw}@db/app")


def test_a_percent_escape_is_decoded_like_every_driver_does():
    assert urls.parse_postgres_url("postgresql://app:Zq9%25Kx%41@db/app").password == "Zq9%KxA"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@Zq9Secret@127.0.0.1:1/db", "more than one '@'"),  # the reported case
        ("postgresql://u:12/x@host/db", "'@' after the host"),  # urllib: port 12; SQLAlchemy: password 12/x
        ("postgresql://db:5432/app?note=a@b", "'@' after the host"),  # SQLAlchemy: user db, password 5432/...
        ("postgresql://u:p@db/app#frag", "'#'"),
        ("postgresql://u:p@db/app?options=-c+x", "'+'"),
        ("postgresql://u:p@h1:5432:6432/app", "more than one ':'"),
        ("postgresql://u:p@h1:5432,,h2/app", "empty host"),
        ("postgresql://u:p@h1,h2/app?host=/run/pg", "names its hosts twice"),
        ("redis://:p@r1:6379,r2:6379/0", "several hosts"),
        ("https://es1:9200,es2:9200", "several hosts"),
        ("postgresql://u:p@[::1/app", "IPv6"),
        ("postgresql://u:p\N{FULLWIDTH COMMERCIAL AT}x@db/app", "non-ASCII"),
        ("postgresql://u:%FFx@db/app", "not UTF-8"),
        ("postgresql://u:a%00b@db/app", "NUL"),
        ("redis://:p@cache:6379/0?x=a@b", "'@' after the host"),
        ("https://search:9200/?pretty=true", "query string"),
    ],
)
def test_ambiguous_or_malformed_urls_are_refused(url, expected):
    parse = urls.parse_elasticsearch_url if url.startswith("http") else (
        urls.parse_redis_url if url.startswith("redis") else urls.parse_postgres_url)
    with pytest.raises(urls.InvalidUrl) as caught:
        parse(url)
    assert expected in str(caught.value)
    assert "Zq9Secret" not in str(caught.value)


def test_validation_returns_the_canonical_text():
    assert urls.validate_postgres_url("postgresql://app:a!b@db/app") == "postgresql://app:a%21b@db/app"
    assert urls.validate_postgres_url("postgresql://postgres:@/postgres?host=/tmp/pg") == (
        "postgresql://postgres:@/postgres?host=/tmp/pg")
    assert urls.validate_postgres_url("postgresql://u:p@[::1]:5432/app") == "postgresql://u:p@[::1]:5432/app"


def test_driver_objects_come_from_the_parsed_parts():
    password = "Zq9@:/?#%[]Kx7w"
    url = f"postgres://app:{quote(password, safe='')}@db:5433/my%2Fdb?sslmode=require&host=db&host=replica"
    sa_url = urls.sqlalchemy_url(url)
    assert (sa_url.drivername, sa_url.username, sa_url.password, sa_url.host, sa_url.port, sa_url.database) == (
        "postgresql+psycopg", "app", password, "db", 5433, "my/db")
    assert sa_url.query == {"sslmode": "require", "host": ("db", "replica")}
    assert urls.database_name(url) == "my/db"
    assert urls.replace_database(url, "a/b").startswith("postgres://app:")
    assert urls.database_name(urls.replace_database(url, "a/b")) == "a/b"


def test_make_url_encodes_what_it_is_given():
    password = "Zq9@:/?#%[]Kx7w"
    built = urls.make_url("redis", "127.0.0.1", 6379, username="", password=password, database=0)
    parsed = urls.parse_redis_url(built)
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.path) == (
        "", password, "127.0.0.1", 6379, "/0")


def test_redact_masks_up_to_the_last_at_sign():
    cleaned = redact("could not connect: postgresql://u:p@Zq9Secret@127.0.0.1:1/db refused")
    assert "Zq9Secret" not in cleaned and "postgresql://u:***@127.0.0.1:1/db" in cleaned


def test_a_multi_host_postgres_url_keeps_every_host_for_libpq_and_sqlalchemy():
    """libpq's form for following the primary: every host tried in order, the writable one kept."""
    text = "postgresql://app:s%40cret@db1:5432,db2:5433,[::1]/orchestrator?target_session_attrs=read-write"
    parsed = urls.parse_postgres_url(text)
    assert parsed.hosts == (("db1", 5432), ("db2", 5433), ("::1", None))
    assert parsed.render() == text and urls.validate_postgres_url(text) == text
    assert str(parsed) == text.replace("s%40cret", "***") and urls.mask_url(text) == str(parsed)
    assert urls.libpq_url(text) == text  # psql, pg_dump and pg_restore take it as it is
    engine = sa.create_engine(urls.sqlalchemy_url(text))
    args = engine.dialect.create_connect_args(engine.url)[1]
    assert (args["host"], args["port"]) == ("db1,db2,::1", "5432,5433,")
    assert args["target_session_attrs"] == "read-write" and args["password"] == "s@cret"
    assert urls.replace_database(text, "other").startswith("postgresql://app:s%40cret@db1:5432,db2:5433,[::1]/other?")
