"""Settings: every good and bad case, and never a password in an error."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from orchestrator_data.settings import Environment, SettingsError, load_settings
from tests.credentials import RAW_REFUSED, URL_TEMPLATES, leaks

SECRET = "s3cr3t-P4ss"
NEON = (f"postgresql://neondb_owner:{SECRET}@ep-cool-darkness-123456.eu-central-1.aws.neon.tech/neondb"
        "?sslmode=require&channel_binding=require")


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL", "DAGSTER_PG_URL", "ENVIRONMENT",
                 "ORCHESTRATOR_ENV", "BACKUP_DIR", "ELASTICSEARCH_CA_CERT", "STACK_POSTGRES_PORT",
                 "ORCHESTRATOR_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_mean_local_stack(env):
    settings = load_settings()
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.database_url is None and settings.redis_url is None and settings.elasticsearch_url is None


def test_neon_url_with_channel_binding_is_accepted(env):
    env.setenv("DATABASE_URL", NEON)
    assert load_settings().database_url == NEON


@pytest.mark.parametrize("value", ["production", "PRODUCTION", " testing "])
def test_known_environments(env, value):
    env.setenv("ENVIRONMENT", value)
    assert load_settings().environment.value == value.strip().lower()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", f"mysql://root:{SECRET}@db:3306/app", "scheme 'mysql'"),
        ("DATABASE_URL", f"postgresql://u:{SECRET}@db:99999/app", "port"),
        ("DATABASE_URL", f"postgresql://u:{SECRET}@db:abc/app", "port"),
        ("DATABASE_URL", f"postgresql://u:{SECRET}@db:5432/", "no database name"),
        ("DATABASE_URL", f"postgresql://u:{SECRET}@:5432/app", "no host"),
        ("DATABASE_URL", f"postgresql://u:{SECRET}@db/app?sslmode=always", "sslmode"),
        ("DATABASE_URL", f"postgresql://u:{SECRET}@db/app?channel_binding=maybe", "channel_binding"),
        ("DATABASE_URL", f"u:{SECRET}@db/app", "not a URL"),
        ("DAGSTER_PG_URL", f"postgresql://u:{SECRET}@db:0/dagster", "port"),
        ("REDIS_URL", f"redis://:{SECRET}@cache:70000/0", "port"),
        ("REDIS_URL", f"redis://:{SECRET}@cache:6379/zero", "database number"),
        ("REDIS_URL", f"memcached://:{SECRET}@cache:11211", "scheme"),
        ("ELASTICSEARCH_URL", f"ftp://elastic:{SECRET}@search:9200", "scheme 'ftp'"),
        ("ELASTICSEARCH_URL", f"https://elastic:{SECRET}@search:port", "port"),
        ("ENVIRONMENT", "staging", "not a known environment"),
        ("STACK_POSTGRES_PORT", "70000", "65535"),
        ("STACK_POSTGRES_PORT", "fifty", "integer"),
        ("DATABASE_POOL_SIZE", "0", "greater than or equal to 1"),
        ("ELASTICSEARCH_CA_CERT", "/nonexistent/ca.pem", "readable file"),
        ("STACK_ELASTICSEARCH_JAVA_OPTS", "-XX:TieredStopAtLevel=1 Xmx1g", "'Xmx1g' is not a JVM option"),
        ("STACK_ELASTICSEARCH_JAVA_OPTS", "-Xmx4g", "the heap is STACK_ELASTICSEARCH_HEAP"),
        ("STACK_ELASTICSEARCH_JAVA_OPTS", "-Dpath='unclosed", "cannot be split"),
    ],
)
def test_bad_values_name_the_variable_and_hide_the_secret(env, variable, value, expected):
    env.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert caught.value.variable == variable
    assert message.startswith(variable)
    assert expected in message
    assert SECRET not in message
    assert SECRET not in repr(caught.value)


def test_env_local_overrides_env_and_environment_overrides_both(env, tmp_path):
    (tmp_path / ".env").write_text("ENVIRONMENT=testing\nREDIS_URL=redis://from-env-file:6379/0\n")
    (tmp_path / ".env.local").write_text("REDIS_URL=redis://from-env-local:6379/1\n")
    settings = load_settings()
    assert settings.environment is Environment.TESTING
    assert settings.redis_url == "redis://from-env-local:6379/1"
    env.setenv("REDIS_URL", "redis://from-process:6379/2")
    assert load_settings().redis_url == "redis://from-process:6379/2"


def test_bad_value_in_env_file_is_reported_like_an_environment_variable(env, tmp_path):
    (tmp_path / ".env.local").write_text(f"DATABASE_URL=postgresql://u:{SECRET}@db:123456/app\n")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.variable == "DATABASE_URL"
    assert SECRET not in str(caught.value)


def test_unknown_variables_in_env_files_are_ignored(env, tmp_path):
    (tmp_path / ".env").write_text("NODE_ENV=development\nJWT_SECRET=whatever\n")
    assert load_settings().environment is Environment.DEVELOPMENT


def test_elasticsearch_credentials_are_secret_strings(env, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env.setenv("ELASTICSEARCH_URL", "https://search.example:9243")
    env.setenv("ELASTICSEARCH_API_KEY", SECRET)
    env.setenv("ELASTICSEARCH_CA_CERT", str(ca))
    settings = load_settings()
    assert settings.elasticsearch_api_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    assert settings.elasticsearch_ca_cert == ca


def test_backup_dir_and_production_flag(env):
    env.setenv("BACKUP_DIR", "/var/backups/orchestrator")
    env.setenv("ENVIRONMENT", "production")
    settings = load_settings()
    assert str(settings.backup_dir) == "/var/backups/orchestrator"
    assert settings.is_production


@pytest.mark.parametrize("variable", sorted(URL_TEMPLATES))
@pytest.mark.parametrize("char", RAW_REFUSED)
def test_a_url_whose_password_holds_a_raw_reserved_character_is_refused(env, variable, char):
    password = f"Zq9{char}Kx7wVb"
    env.setenv(variable, URL_TEMPLATES[variable].format(password=password))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.variable == variable
    assert leaks(str(caught.value), password) == []


@pytest.mark.parametrize("variable", sorted(URL_TEMPLATES))
def test_a_url_with_an_encoded_password_is_kept_in_its_canonical_form(env, variable):
    password = "Zq9@:/?#%[]Kx7wVb"
    encoded = "Zq9%40%3A%2F%3F%23%25%5B%5DKx7wVb"
    env.setenv(variable, URL_TEMPLATES[variable].format(password=encoded.replace("%3A", ":")))
    kept = getattr(load_settings(), variable.lower())
    assert kept == URL_TEMPLATES[variable].format(password=encoded)
    assert urlsplit(kept).password == encoded and unquote(encoded) == password


def test_env_file_that_is_not_utf8_is_named(env, tmp_path):
    (tmp_path / ".env").write_text("ENVIRONMENT=testing\n")
    (tmp_path / ".env.local").write_bytes(b"ENVIRONMENT=testing\nREDIS_PASSWORD=caf\xe9\n")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.variable == ".env.local"
    assert "not UTF-8" in str(caught.value)


def test_state_directory_that_is_a_file_is_refused(env, tmp_path):
    (tmp_path / "state").write_text("")
    env.setenv("ORCHESTRATOR_DATA_HOME", str(tmp_path / "state"))
    with pytest.raises(SettingsError, match="ORCHESTRATOR_DATA_HOME names a file"):
        load_settings()
    env.setenv("ORCHESTRATOR_DATA_HOME", str(tmp_path / "state" / "below"))
    with pytest.raises(SettingsError, match="ORCHESTRATOR_DATA_HOME is a path below a file"):
        load_settings()
    env.setenv("ORCHESTRATOR_DATA_HOME", str(tmp_path / "not-yet" / "created"))
    assert load_settings().state_dir == tmp_path / "not-yet" / "created"


def test_exported_environment_gives_another_directory_the_same_settings(env, tmp_path, monkeypatch):
    """What `ui` hands dagster dev, which runs in DAGSTER_HOME: this directory's .env files, the
    environment still winning, and relative paths made absolute against this directory."""
    from orchestrator_data.settings import exported_environment

    (tmp_path / ".env").write_text("SEARCH_INDEX_PREFIX=fromenv\nbackup_dir=ignored\n")
    (tmp_path / ".env.local").write_text("BACKUP_DIR=my-backups\nSEARCH_SHARDS=3\n")
    env.setenv("SEARCH_SHARDS", "2")
    exported = exported_environment(load_settings())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for name, value in exported.items():
        env.setenv(name, value)
    settings = load_settings()
    assert settings.backup_dir == tmp_path / "my-backups"
    assert settings.state_dir == tmp_path / ".orchestrator-data"
    assert settings.search_index_prefix == "fromenv" and settings.search_shards == 2


def test_search_snapshot_settings_default_blank_means_unset_and_bad_values_are_named(env, tmp_path):
    settings = load_settings()
    assert (settings.search_snapshot_repository, settings.search_snapshot_location) == (None, None)
    assert (settings.search_snapshot_keep, settings.search_snapshot_max_age_hours,
            settings.search_restore_check_max_age_days) == (7, 26.0, 8.0)
    (tmp_path / ".env").write_text("SEARCH_SNAPSHOT_REPOSITORY=\nSEARCH_SNAPSHOT_LOCATION=  \n")
    assert load_settings().search_snapshot_location is None  # as shipped in .env.example: the defaults
    for variable, value in (("SEARCH_SNAPSHOT_REPOSITORY", "Bad Name"), ("SEARCH_SNAPSHOT_KEEP", "0"),
                            ("SEARCH_SNAPSHOT_MAX_AGE_HOURS", "-1")):
        env.setenv(variable, value)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert caught.value.variable == variable
        env.delenv(variable)
