"""The deployment files stay valid and agree with each other: docker-compose.yml passes `docker compose
config -q` (or, where the compose plugin is not installed, the compose-spec schema plus the checks of
references compose makes), the Dockerfile carries every package of the project, and the Helm values name
the same image, settings and run-queue limits as the compose file and dagster.yaml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from tests.conftest import PROJECT_ROOT

COMPOSE_FILE = "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).parent / "compose_spec" / "compose-spec.json"
HELM_VALUES = PROJECT_ROOT / "deploy" / "helm" / "values.yaml"
HELM_SECRETS = PROJECT_ROOT / "deploy" / "helm" / "secrets.example.yaml"
DOCKERFILE = PROJECT_ROOT / "docker" / "Dockerfile"
# the compose file's passwords, as docker/stack.env would give them
STACK_ENV = {"POSTGRES_PASSWORD": "test-postgres-password", "REDIS_PASSWORD": "test-redis-password"}


def _load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _compose_plugin() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def _environment_without_stack(**extra) -> dict[str, str]:
    """This process's environment (docker finds its plugins from HOME) less any stack password."""
    return {**{key: value for key, value in os.environ.items() if key not in STACK_ENV}, **extra}


def _compose_config_problems(project: Path, env_file: Path) -> list[str]:
    """`docker compose config -q` on the project's compose file: its one error line, or nothing."""
    done = subprocess.run([*_compose_plugin(), "--project-directory", str(project), "-f", str(project / COMPOSE_FILE),
                           "--env-file", str(env_file), "config", "-q"],
                          capture_output=True, text=True, env=_environment_without_stack(STACK_ENV_FILE=str(env_file)))
    return [done.stderr.strip() or f"exit {done.returncode}"] if done.returncode else []


def _schema_problems(project: Path) -> list[str]:
    """The compose-spec schema on the compose file and every file it extends, then the references compose
    resolves itself: extended services, depends_on targets and named volumes must exist."""
    validator = Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8")))
    problems: list[str] = []

    def validated(path: Path) -> dict:
        document = _load(path)
        problems.extend(f"{path.name}: {'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
                        for error in validator.iter_errors(document))
        return document if isinstance(document, dict) else {}

    compose = validated(project / COMPOSE_FILE)
    services = compose.get("services") or {}
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        service = service if isinstance(service, dict) else {}
        volumes = list(service.get("volumes") or [])
        extends = service.get("extends")
        if extends:
            source = project / (extends.get("file", COMPOSE_FILE) if isinstance(extends, dict) else COMPOSE_FILE)
            target = extends.get("service") if isinstance(extends, dict) else extends
            base = validated(source).get("services", {}) if source.is_file() else {}
            if not source.is_file():
                problems.append(f"service {name!r} extends a missing file {source.name}")
            elif target not in base:
                problems.append(f"service {name!r} extends {target!r}, which {source.name} does not define")
            else:
                volumes += base[target].get("volumes") or []
        depends_on = service.get("depends_on") or []
        problems.extend(f"service {name!r} depends on undefined service {dependency!r}"
                        for dependency in depends_on if dependency not in services)
        for volume in volumes:
            volume_source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            is_named = volume_source and not volume_source.startswith((".", "/", "~", "$"))
            if is_named and volume_source not in declared_volumes:
                problems.append(f"service {name!r} refers to undeclared volume {volume_source!r}")
    return problems


def compose_checks() -> list:
    """The schema validation always (it is what CI has); the real `docker compose config -q` as well
    where the plugin is installed."""
    checks = [lambda project, env_file: _schema_problems(project)]
    return checks + [_compose_config_problems] if _compose_plugin() else checks


@pytest.fixture
def env_file(tmp_path) -> Path:
    path = tmp_path / "stack.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in STACK_ENV.items()))
    return path


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """The compose files and what they mount, copied so a test can break them."""
    project = tmp_path / "project"
    project.mkdir()
    for name in (COMPOSE_FILE, "docker-compose.db.yml"):
        shutil.copy(PROJECT_ROOT / name, project / name)
    shutil.copytree(PROJECT_ROOT / "docker", project / "docker")
    return project


def test_the_compose_file_is_valid(env_file):
    for check in compose_checks():
        assert check(PROJECT_ROOT, env_file) == []


@pytest.mark.parametrize("old, new, problem", [
    ("    restart: unless-stopped\n", "    restart: unless-stopped\n    comand: [oops]\n", "comand"),
    ("      init: {condition: service_completed_successfully}",
     "      inits: {condition: service_completed_successfully}", "inits"),
    ("service: redis}", "service: rediss}", "rediss"),
    ("  esdata:\n", "", "esdata"),
    ("      code-server: {condition: service_healthy}", "      code-server: {condition: service_good}",
     "condition"),
], ids=["unknown-key", "undefined-dependency", "missing-extended-service", "undeclared-volume", "bad-condition"])
def test_a_broken_compose_file_is_refused(project_copy, env_file, old, new, problem):
    compose = project_copy / COMPOSE_FILE
    text = compose.read_text()
    assert old in text
    compose.write_text(text.replace(old, new, 1))
    for check in compose_checks():
        problems = check(project_copy, env_file)
        assert problems and problem in " ".join(problems), problems


def test_the_compose_file_requires_its_passwords():
    compose = _load(PROJECT_ROOT / COMPOSE_FILE)
    urls = compose["x-service-urls"]
    for variable in STACK_ENV:
        # required (`:?`), never defaulted, wherever a URL carries it
        carried = [value for value in urls.values() if f"${{{variable}" in str(value)]
        assert carried and all(f"${{{variable}:?" in value for value in carried), variable


def test_the_dockerfile_copies_every_package_and_the_workspace_names_the_code_server():
    dockerfile = DOCKERFILE.read_text()
    copied = {source for line in dockerfile.splitlines() if line.startswith("COPY ")
              for source in line.split()[1:-1]}
    for source in copied:
        assert (PROJECT_ROOT / source).exists(), f"the Dockerfile copies a missing {source}"
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    packages = re.search(r'include = \[([^\]]*)\]', pyproject).group(1)
    for pattern in re.findall(r'"([a-z_]+)\*"', packages):
        assert pattern in copied, f"the image lacks the package {pattern}"
    assert "definitions.py" in copied and "dagster.yaml" in copied

    [location] = _load(PROJECT_ROOT / "docker" / "workspace.grpc.yaml")["load_from"]
    server = location["grpc_server"]
    command = _load(PROJECT_ROOT / COMPOSE_FILE)["services"][server["host"]]["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-p") + 1] == str(server["port"])
    # the code server serves the module workspace.yaml loads locally
    [local] = _load(PROJECT_ROOT / "workspace.yaml")["load_from"]
    assert command[command.index("-m") + 1] == local["python_module"]["module_name"]


def test_the_helm_values_name_the_compose_image_settings_and_run_queue():
    values = _load(HELM_VALUES)
    compose = _load(PROJECT_ROOT / COMPOSE_FILE)
    secrets = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(HELM_SECRETS.read_text())}

    [deployment] = values["dagster-user-deployments"]["deployments"]
    compose_image = compose["x-dagster"]["image"]  # ${ORCHESTRATOR_DATA_IMAGE:-orchestrator-data:latest}
    image_name = re.search(r":-([^:}]+)", compose_image).group(1)
    assert deployment["image"]["repository"].rsplit("/", 1)[-1] == image_name
    code_server = compose["services"]["code-server"]["command"]
    assert deployment["codeServerArgs"][:2] == ["-m", code_server[code_server.index("-m") + 1]]

    # every setting the compose file gives the Dagster containers reaches the code location on Kubernetes,
    # from its env or its Secret (whose example exists); only the Celery database is Celery's alone
    [secret_ref] = deployment["envSecrets"]
    secret_keys = set(secrets[secret_ref["name"]]["stringData"])
    assert not any(secrets[secret_ref["name"]]["stringData"].values()), "the example Secret holds values"
    given = set(deployment["env"]) | secret_keys
    assert set(compose["x-service-urls"]) - {"DAGSTER_CELERY_REDIS_DB"} <= given
    assert {deployment["env"]["DAGSTER_EXECUTOR"], compose["x-service-urls"]["DAGSTER_EXECUTOR"]} == \
        {"multiprocess", "celery"}
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == [secret_ref]
    assert values["global"]["postgresqlSecretName"] in secrets
    assert "postgresql-password" in secrets[values["global"]["postgresqlSecretName"]]["stringData"]

    # the run queue mirrors dagster.yaml, the source of truth
    instance = _load(PROJECT_ROOT / "dagster.yaml")["run_coordinator"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == instance["class"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == instance["config"]["max_concurrent_runs"]
    assert queued["dequeueIntervalSeconds"] == instance["config"]["dequeue_interval_seconds"]
    assert (queued.get("tagConcurrencyLimits") or []) == (instance["config"].get("tag_concurrency_limits") or [])
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False


def test_the_wal_archiver_runs_as_a_service_of_its_own():
    compose = _load(PROJECT_ROOT / COMPOSE_FILE)
    archiver = compose["services"]["archiver"]
    assert archiver["command"] == ["orchestrator-data", "recovery", "archiver"]
    assert archiver["environment"]["WAL_ARCHIVE_MODE"].startswith("${WAL_ARCHIVE_MODE")
    assert "recovery" in compose["volumes"]
    [manifest] = list(yaml.safe_load_all((PROJECT_ROOT / "deploy" / "helm" / "archiver.yaml").read_text()))
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    [deployment] = _load(HELM_VALUES)["dagster-user-deployments"]["deployments"]
    assert container["image"] == f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    assert container["command"] == archiver["command"]
    assert [ref["secretRef"]["name"] for ref in container["envFrom"]] == [s["name"] for s in deployment["envSecrets"]]
    assert manifest["spec"]["replicas"] == 1
