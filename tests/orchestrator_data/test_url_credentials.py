"""Passwords holding every character a URL reserves, percent-encoded, reach the real servers through
every driver the project uses; and a server that cannot be reached never gets the password into an
error message."""

from __future__ import annotations

import base64
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import psycopg
import pytest
import redis
import sqlalchemy as sa

from orchestrator_data import urls
from orchestrator_data.backups import _pg
from orchestrator_data.postgres import client as pg
from orchestrator_data.redaction import describe_error
from orchestrator_data.redis import client as rd
from orchestrator_data.search import client as es
from orchestrator_data.settings import load_settings
from orchestrator_data.stack.common import free_port
from tests.credentials import PASSWORD, ROLE, leaks, postgres_login, redis_login

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres_probe_url(stack):
    with postgres_login(stack) as url:
        yield url


@pytest.fixture
def redis_probe_url(stack):
    with redis_login(stack) as url:
        yield url


def test_the_url_carries_the_password_encoded():
    url = urls.make_url("postgresql", "127.0.0.1", 5432, username=ROLE, password=PASSWORD, database="x")
    assert PASSWORD not in url and quote(PASSWORD, safe="") in url


def test_postgres_login_through_every_driver(postgres_probe_url, monkeypatch):
    # SQLAlchemy + psycopg 3, from the parsed parts (the project's engines, the migrator)
    engine = pg.create_engine(postgres_probe_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() == ROLE
    finally:
        engine.dispose()
    # the same URL read from the environment by the settings (kept in canonical form)
    monkeypatch.setenv("DATABASE_URL", postgres_probe_url)
    engine = pg.create_engine(load_settings().database_url)
    try:
        assert pg.check_health(engine).detail["user"] == ROLE
    finally:
        engine.dispose()
    # libpq's own URL parser (backups' connections)
    with _pg.connect(postgres_probe_url) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == ROLE
    # a libpq tool with the password in PGPASSWORD, as pg_dump and pg_restore get it
    bare, password = _pg.split_password(postgres_probe_url)
    assert password == PASSWORD and not leaks(bare)
    psql = subprocess.run([str(_pg.tool("psql")), "-X", "-A", "-t", "-c", "SELECT current_user", bare],
                          capture_output=True, text=True, env=_pg.tool_env(password), timeout=60, check=False)
    assert psql.stdout.strip() == ROLE, psql.stderr
    # SQLAlchemy's own text parser with psycopg2, as dagster-postgres reads DAGSTER_PG_URL
    engine = sa.create_engine(urls.dagster_postgres_url(postgres_probe_url))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() == ROLE
    finally:
        engine.dispose()


def test_postgres_refuses_a_wrong_password_without_printing_it(postgres_probe_url):
    wrong = urls.parse_postgres_url(postgres_probe_url).replace(password=PASSWORD[::-1]).render()
    engine = pg.create_engine(wrong)
    try:
        health = pg.check_health(engine, attempts=1)
    finally:
        engine.dispose()
    assert not health.ok and "password authentication failed" in health.error
    assert not leaks(health.error) and not leaks(health.error, PASSWORD[::-1])


def test_unreachable_postgres_error_does_not_contain_the_password():
    url = urls.make_url("postgresql", "127.0.0.1", free_port(), username=ROLE, password=PASSWORD, database="app")
    engine = pg.create_engine(url)
    try:
        with pytest.raises(sa.exc.OperationalError) as caught:
            engine.connect()
        health = pg.check_health(engine, attempts=1)
    finally:
        engine.dispose()
    for text in (str(caught.value), repr(caught.value), describe_error(caught.value), health.error):
        assert not leaks(text), text
    with pytest.raises(psycopg.OperationalError) as direct:
        _pg.connect(url)
    assert not leaks(str(direct.value))


def test_redis_login_with_an_encoded_password(redis_probe_url):
    client = rd.create_client(redis_probe_url)
    try:
        assert client.acl_whoami() == ROLE
        assert rd.check_health(client).ok
    finally:
        client.close()


def test_unreachable_redis_error_does_not_contain_the_password():
    url = urls.make_url("redis", "127.0.0.1", free_port(), username=ROLE, password=PASSWORD, database=0)
    client = rd.create_client(url, socket_timeout=1, retries=0)
    try:
        with pytest.raises(redis.ConnectionError) as caught:
            client.ping()
        health = rd.check_health(client)
    finally:
        client.close()
    for text in (str(caught.value), repr(caught.value), health.error):
        assert not leaks(text), text


class _RecordingHandler(BaseHTTPRequestHandler):
    """Answers GET / like an Elasticsearch node and keeps the Authorization header it was sent."""

    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).seen.append(self.headers.get("Authorization", ""))
        body = b'{"version": {"number": "8.19.0"}, "tagline": "You Know, for Search"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_elasticsearch_sends_the_decoded_password_as_basic_auth(stack):
    # The test node has no security to check a password, so a loopback listener reads the header.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = urls.make_url("http", "127.0.0.1", server.server_address[1], username=ROLE, password=PASSWORD)
        client = es.create_client(url, max_retries=0)
        client.info()
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    scheme, _, token = _RecordingHandler.seen[-1].partition(" ")
    assert scheme == "Basic" and base64.b64decode(token).decode() == f"{ROLE}:{PASSWORD}"
    # and the real node answers through a URL carrying the same credentials
    node = urls.parse_elasticsearch_url(stack.endpoints().elasticsearch_url)
    client = es.create_client(node.replace(username=ROLE, password=PASSWORD).render())
    try:
        assert es.check_health(client).ok
    finally:
        client.close()


def test_unreachable_elasticsearch_error_does_not_contain_the_password():
    url = urls.make_url("http", "127.0.0.1", free_port(), username=ROLE, password=PASSWORD)
    client = es.create_client(url, max_retries=0, request_timeout=2)
    try:
        health = es.check_health(client)
    finally:
        client.close()
    assert not health.ok and not leaks(health.error), health.error
