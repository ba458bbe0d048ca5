"""The Celery broker's URL and settings (pure), and the worker listing on a real Redis."""

from __future__ import annotations

import pytest

from orchestrator_data import workers
from orchestrator_data.settings import Executor, SettingsError, load_settings


def settings(**env):
    return load_settings(_env_file=None, **env)


def test_broker_is_redis_url_on_the_celery_database_with_its_password():
    url = workers.broker_url(settings(), "redis://:s%40cret@redis.example:6380/0")
    assert url == "redis://:s%40cret@redis.example:6380/1"
    own = workers.broker_url(settings(dagster_celery_redis_db=7), "rediss://u:pw@r.example/3?ssl_cert_reqs=required")
    assert own == "rediss://u:pw@r.example/7?ssl_cert_reqs=required"


def test_broker_on_the_applications_own_database_is_refused_naming_the_variable():
    with pytest.raises(SettingsError) as caught:
        workers.broker_url(settings(dagster_celery_redis_db=2), "redis://:pw@redis.example:6379/2")
    assert caught.value.variable == "DAGSTER_CELERY_REDIS_DB" and "pw" not in str(caught.value)
    with pytest.raises(SettingsError):  # no database in the URL means 0
        workers.broker_url(settings(dagster_celery_redis_db=0), "redis://redis.example")


def test_unix_socket_redis_is_refused_for_workers():
    with pytest.raises(SettingsError) as caught:
        workers.broker_url(settings(), "unix:///run/redis.sock")
    assert caught.value.variable == "REDIS_URL"


def test_executor_setting(monkeypatch):
    assert settings().dagster_executor is Executor.MULTIPROCESS
    monkeypatch.setenv("DAGSTER_EXECUTOR", " Celery ")
    assert settings().dagster_executor is Executor.CELERY
    monkeypatch.setenv("DAGSTER_EXECUTOR", "k8s")
    with pytest.raises(SettingsError) as caught:
        settings()
    assert caught.value.variable == "DAGSTER_EXECUTOR" and "multiprocess or celery" in str(caught.value)


def test_executor_and_workers_agree_on_acks_late_and_one_task_per_process():
    config = workers.celery_config()
    assert config["task_acks_late"] and config["worker_prefetch_multiplier"] == 1 and config["task_track_started"]
    # a step longer than the visibility timeout would be handed to a second worker while it runs
    assert config["broker_transport_options"]["visibility_timeout"] >= 6 * 3600


@pytest.mark.integration
def test_no_live_worker_is_an_empty_list(stack):
    from orchestrator_data.connections import resolve_url

    url = workers.broker_url(settings(dagster_celery_redis_db=11), resolve_url("redis", load_settings()))
    assert workers.live_workers(workers.control_app(url), timeout_s=0.5) == []
