from __future__ import annotations

import pytest

from orchestrator_data import urls
from orchestrator_data.redaction import redact, register_secret


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
