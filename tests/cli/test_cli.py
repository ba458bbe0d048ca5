"""The CLI end to end: exit codes, output, and no secret in any of it."""

from __future__ import annotations

import json

import pytest

from orchestrator_data.stack.common import free_port
from orchestrator_data.urls import make_url
from tests.credentials import PASSWORD, RAW_REFUSED, URL_TEMPLATES, leaks, postgres_login, redis_login

SECRET = "Cl1Secret-do-not-print"


def _stack_secrets(stack) -> list[str]:
    values = json.loads((stack.root / "secrets.json").read_text())
    return list(values.values())


def _assert_no_secret(result, secrets):
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", f"postgresql://u:{SECRET}@db:99999/app", "DATABASE_URL has a port"),
        ("REDIS_URL", f"redis://:{SECRET}@cache:6379/x", "REDIS_URL has a database number"),
        ("ELASTICSEARCH_URL", f"tcp://elastic:{SECRET}@search:9200", "ELASTICSEARCH_URL has scheme 'tcp'"),
        ("ENVIRONMENT", "staging", "ENVIRONMENT is not a known environment"),
        ("STACK_REDIS_PORT", "0", "STACK_REDIS_PORT is invalid"),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["test"], ["stack", "status"]])
def test_bad_configuration_exits_2_naming_the_variable(cli, variable, value, expected, command):
    result = cli(*command, env={variable: value})
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    _assert_no_secret(result, [SECRET])


def test_unknown_option_is_a_usage_error(cli):
    result = cli("test", "--skip-everything")
    assert result.returncode == 2


def test_version(cli):
    result = cli("--version")
    assert result.returncode == 0 and "orchestrator-data 0.1.0" in result.stdout


@pytest.mark.integration
def test_test_command_passes_on_the_stack(cli, stack):
    result = cli("test")
    assert result.returncode == 0, result.stdout + result.stderr
    for service in ("postgres", "redis", "elasticsearch"):
        assert f"✓ {service}" in result.stdout
    assert " ms" in result.stdout
    _assert_no_secret(result, _stack_secrets(stack))


@pytest.mark.integration
def test_test_command_fails_when_a_required_service_is_down(cli, stack):
    dead = {"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"}
    result = cli("test", env=dead)
    assert result.returncode == 1
    assert "✗ redis" in result.stdout and "✓ postgres" in result.stdout
    _assert_no_secret(result, [SECRET, *_stack_secrets(stack)])
    skipped = cli("test", "--skip-redis", env=dead)
    assert skipped.returncode == 0, skipped.stdout
    assert "redis" not in skipped.stdout


@pytest.mark.integration
def test_test_command_skip_search(cli, stack):
    result = cli("test", "--skip-search", env={"ELASTICSEARCH_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.returncode == 0
    assert "elasticsearch" not in result.stdout


@pytest.mark.integration
def test_status_json_reports_all_three_healthy(cli, stack):
    result = cli("status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True and report["environment"] == "testing"
    services = report["services"]
    assert int(services["postgres"]["version"].split(".")[0]) >= 16
    assert services["redis"]["version"].split()[0] in ("redis", "valkey")
    assert int(services["redis"]["detail"]["protocol_version"].split(".")[0]) >= 7
    assert services["elasticsearch"]["version"].startswith("8.")
    assert services["postgres"]["detail"]["pool_size"] >= 1
    assert all(s["latency_ms"] > 0 for s in services.values())
    _assert_no_secret(result, _stack_secrets(stack))


@pytest.mark.integration
def test_status_table_and_failure_exit(cli, stack):
    result = cli("status")
    assert result.returncode == 0 and "postgres" in result.stdout and "elasticsearch" in result.stdout
    down = cli("status", "--json", env={"ELASTICSEARCH_URL": f"http://127.0.0.1:{free_port()}"})
    assert down.returncode == 1
    assert json.loads(down.stdout)["services"]["elasticsearch"]["ok"] is False


@pytest.mark.integration
def test_stack_status_masks_passwords(cli, stack):
    result = cli("stack", "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    services = {s["name"]: s for s in json.loads(result.stdout)["services"]}
    assert set(services) == {"postgres", "redis", "elasticsearch"}
    assert services["postgres"]["url"].startswith("postgresql://postgres:***@127.0.0.1:")
    assert services["redis"]["url"].startswith("redis://:***@127.0.0.1:")
    assert all(s["running"] and s["pid"] and s["data_dir"] for s in services.values())
    _assert_no_secret(result, _stack_secrets(stack))
    table = cli("stack", "status")
    assert table.returncode == 0
    _assert_no_secret(table, _stack_secrets(stack))


@pytest.mark.integration
def test_stack_start_is_idempotent(cli, stack):
    before = {s.name: s.pid for s in stack.status()}
    result = cli("stack", "start")
    assert result.returncode == 0, result.stderr
    assert {s.name: s.pid for s in stack.status()} == before
    _assert_no_secret(result, _stack_secrets(stack))


def test_stack_start_rejects_an_unknown_service(cli):
    result = cli("stack", "start", "--only", "mongodb")
    assert result.returncode == 2 and "unknown service 'mongodb'" in result.stderr


def test_commands_without_a_stack_say_what_to_do(cli, tmp_path):
    result = cli("test", env={"ORCHESTRATOR_DATA_HOME": str(tmp_path / "nothing-here")})
    assert result.returncode == 1
    assert "DATABASE_URL is not set" in result.stdout and "orchestrator-data stack start" in result.stdout


# -- URLs whose password holds reserved characters -----------------------------------------------
@pytest.mark.parametrize("command", [["migrate", "status"], ["status"]])
def test_the_reported_ambiguous_url_exits_2_without_the_password(cli, command, tmp_path):
    # urllib reads the password as 'p@Zq9Secret', SQLAlchemy and libpq as 'p' and the host as the rest
    result = cli(*command, env={"DATABASE_URL": "postgresql://u:p@Zq9Secret@127.0.0.1:1/db",
                                "ORCHESTRATOR_DATA_HOME": str(tmp_path / "state")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "DATABASE_URL is ambiguous" in result.stderr and "%40" in result.stderr
    assert leaks(result.stdout + result.stderr, "p@Zq9Secret") == [] and "Traceback" not in result.stderr


@pytest.mark.parametrize("variable", sorted(URL_TEMPLATES))
@pytest.mark.parametrize("char", RAW_REFUSED)
def test_a_raw_reserved_character_in_a_url_password_exits_2(cli, variable, char, tmp_path):
    # every command loads the settings first: `status` stands for them (the reported case above runs two)
    password = f"Qm4{char}Vx8kTr"
    result = cli("status", env={variable: URL_TEMPLATES[variable].format(password=password),
                                "ORCHESTRATOR_DATA_HOME": str(tmp_path / "state")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: configuration: {variable} ")
    assert leaks(result.stdout + result.stderr, password) == [] and "Traceback" not in result.stderr


@pytest.mark.integration
def test_encoded_passwords_log_in_through_the_cli(cli, stack):
    with postgres_login(stack) as database_url, redis_login(stack) as redis_url:
        result = cli("test", "--skip-search", env={"DATABASE_URL": database_url, "REDIS_URL": redis_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ postgres" in result.stdout and "✓ redis" in result.stdout
    assert leaks(result.stdout + result.stderr, PASSWORD) == []


@pytest.mark.integration
@pytest.mark.parametrize("command", [["migrate", "status"], ["status"], ["test"]])
def test_an_unreachable_server_fails_without_the_encoded_password(cli, stack, command):
    port = free_port()
    result = cli(*command, env={
        "DATABASE_URL": make_url("postgresql", "127.0.0.1", port, username="app", password=PASSWORD, database="app"),
        "REDIS_URL": make_url("redis", "127.0.0.1", port, username="app", password=PASSWORD, database=0),
        "ELASTICSEARCH_URL": make_url("http", "127.0.0.1", port, username="app", password=PASSWORD),
    })
    assert result.returncode == 1, result.stdout + result.stderr
    assert leaks(result.stdout + result.stderr, PASSWORD) == [] and "Traceback" not in result.stderr


# -- configuration files and the state directory -------------------------------------------------
@pytest.mark.parametrize("command", [["status"], ["migrate", "status"], ["stack", "start"]])
def test_an_env_file_that_is_not_utf8_exits_2_naming_it(cli, command, tmp_path):
    (tmp_path / ".env.local").write_bytes(b"REDIS_URL=redis://:caf\xe9@cache:6379/0\n")
    result = cli(*command, cwd=tmp_path, env={"ORCHESTRATOR_DATA_HOME": str(tmp_path / "state")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: configuration: .env.local is not UTF-8" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "state").exists()


@pytest.mark.parametrize("command", [["status"], ["stack", "status"], ["stack", "start"], ["migrate", "status"]])
def test_a_state_directory_that_is_a_file_exits_2_naming_the_variable(cli, command, tmp_path):
    (tmp_path / "state").write_text("not a directory")
    result = cli(*command, env={"ORCHESTRATOR_DATA_HOME": str(tmp_path / "state")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: configuration: ORCHESTRATOR_DATA_HOME names a file, not a directory" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["status"], ["stack", "status"], ["stack", "start"], ["migrate", "status"]])
def test_a_corrupt_secrets_file_exits_2_naming_it(cli, command, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "stack.json").write_text(json.dumps({"postgres": {"port": free_port()}, "redis": {"port": free_port()}}))
    corrupt = b'{"postgres_password": "Hk2pW9'  # cut off mid-write
    (state / "secrets.json").write_bytes(corrupt)
    result = cli(*command, env={"ORCHESTRATOR_DATA_HOME": str(state)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: configuration: {state / 'secrets.json'} is corrupt" in result.stderr
    assert "Traceback" not in result.stderr and "Hk2pW9" not in result.stdout + result.stderr
    assert (state / "secrets.json").read_bytes() == corrupt  # nothing overwritten
    assert sorted(p.name for p in state.iterdir()) == ["secrets.json", "stack.json"]  # nothing started


# -- input refused before anything runs: one line, exit 2, nothing written -----------------------
@pytest.mark.parametrize(("args", "message"), [
    (["worker", "start", "--loglevel", "LOUD"],
     "error: --loglevel must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, FATAL, not 'LOUD'"),
    (["search", "load", "executions", "--month", "2025-01-01"],
     "error: --month '2025-01-01' is not a month: use YYYY-MM, e.g. 2024-03"),
    (["search", "load", "executions", "--month", "2025-1"], "error: --month '2025-1' is not a month"),
])
def test_a_bad_option_value_is_one_line_and_exit_2(cli, args, message, tmp_path):
    result = cli(*args, env={"ORCHESTRATOR_DATA_HOME": str(tmp_path / "state")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == "" and not (tmp_path / "state").exists()


@pytest.mark.integration
def test_status_on_a_database_never_migrated_names_init(cli, stack, database):
    table = cli("status", env={"DATABASE_URL": database})
    assert table.returncode == 0, table.stdout + table.stderr
    assert "search unavailable: the schema is not migrated yet: run `orchestrator-data init`" in table.stdout
    assert "relation" not in table.stdout + table.stderr and "Traceback" not in table.stderr
    as_json = cli("status", "--json", env={"DATABASE_URL": database})
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["healthy"] is True and "search" not in report
    assert report["search_error"] == "the schema is not migrated yet: run `orchestrator-data init`"
