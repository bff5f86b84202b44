"""Where the steps of runs execute: on this machine (the default) or on Celery workers.

CAMPAIGNS_EXECUTOR picks it, read when the code location loads (by the code server, every run
and every worker alike; docs/deploy.md):
- `multiprocess` (default): `send_campaign` runs each line in a process of the run's machine;
  the other jobs and the asset runs keep Dagster's default executor.
- `celery`: the steps of `send_campaign`, of the import and report assets and of
  `control_campaign` are tasks on the Celery workers (`campaign_pipelines.worker`) listening on
  the RabbitMQ broker at CAMPAIGNS_BROKER_URL; their outputs (ids and small summaries) go to the
  campaign database, which every worker reaches. The admin forms stay in-process.

A run checks its broker before it queues any step, so a wrong URL, a stopped broker or a
broker no worker listens on fails the run at once, naming the URL (without its password).

Celery's modules are imported only with `celery`: every run worker, and with `multiprocess`
every step process, imports this module when it loads the code location.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster._core.execution.retries import RetryMode

if TYPE_CHECKING:
    from dagster_celery.executor import CeleryExecutor

EXECUTOR_ENV = "CAMPAIGNS_EXECUTOR"
BROKER_ENV = "CAMPAIGNS_BROKER_URL"
MULTIPROCESS = "multiprocess"
CELERY = "celery"
# dagster-celery's documented broker: RabbitMQ, as on our machines and in CI.
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
# RabbitMQ only: Redis redelivers a task still running after its visibility timeout (1 h by
# default), so an hours-long line would be sent by two workers.
BROKER_SCHEMES = ("amqp", "amqps", "pyamqp")
# The queue dagster-celery declares and routes every step to (dagster_celery.make_app).
STEP_QUEUE = "dagster"
# Results come back to the run that queued the step, over the broker itself.
RESULT_BACKEND = "rpc://"
_CHECK_TIMEOUT_S = 3.0


class BrokerError(dg.DagsterError):
    """The Celery broker of CAMPAIGNS_BROKER_URL cannot run steps: the run fails before any step."""


def executor_name() -> str:
    value = os.environ.get(EXECUTOR_ENV, "").strip() or MULTIPROCESS
    if value not in (MULTIPROCESS, CELERY):
        raise ValueError(
            f"{EXECUTOR_ENV}={value!r}: expected '{MULTIPROCESS}' (steps on this machine, the default)"
            f" or '{CELERY}' (steps on Celery workers, see docs/deploy.md)"
        )
    return value


def broker_url() -> str:
    """CAMPAIGNS_BROKER_URL, else RabbitMQ on this machine; an AMQP URL or a clear error."""
    from kombu.utils.url import maybe_sanitize_url

    url = os.environ.get(BROKER_ENV, "").strip() or DEFAULT_BROKER_URL
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in BROKER_SCHEMES:
        raise BrokerError(
            f"{BROKER_ENV}={maybe_sanitize_url(url)!r}: expected a RabbitMQ URL"
            f" ({', '.join(f'{s}://' for s in BROKER_SCHEMES)}), e.g. {DEFAULT_BROKER_URL}"
        )
    return url


def celery_app_args() -> dict[str, Any]:
    """What the runs and the workers build their Celery app from: they must agree on all of it."""
    return {
        "broker": broker_url(),
        "backend": RESULT_BACKEND,
        # Workers keep trying a broker that is down when they start, as they do later on.
        "config_source": {"broker_connection_retry_on_startup": True},
    }


def check_broker(url: str) -> None:
    """Fail unless the broker answers and at least one worker consumes the step queue."""
    import amqp
    import kombu
    import kombu.exceptions
    from kombu.utils.url import maybe_sanitize_url

    shown = maybe_sanitize_url(url)
    try:
        with kombu.Connection(url, connect_timeout=_CHECK_TIMEOUT_S) as connection:
            connection.ensure_connection(max_retries=1, timeout=_CHECK_TIMEOUT_S)
            try:
                _, _, consumers = connection.default_channel.queue_declare(STEP_QUEUE, passive=True)
            except amqp.exceptions.NotFound:  # no worker ever started on this broker (or vhost)
                consumers = 0
    except (kombu.exceptions.KombuError, amqp.exceptions.AMQPError, OSError) as exc:
        raise BrokerError(
            f"{BROKER_ENV}: cannot use the Celery broker at {shown} ({exc}); start RabbitMQ"
            " or fix the URL (docs/deploy.md)"
        ) from exc
    if not consumers:
        raise BrokerError(
            f"{BROKER_ENV}: no Celery worker listens on queue '{STEP_QUEUE}' at {shown}; start workers"
            f" with the same {BROKER_ENV} (`make workers N=2`, docs/deploy.md)"
        )


@dg.executor(name="celery", requirements=dg.multiple_process_executor_requirements())
def celery_workers_executor(init_context: dg.InitExecutorContext) -> CeleryExecutor:
    """dagster-celery's executor on the broker of CAMPAIGNS_BROKER_URL, checked first.

    The URL is read from the environment, never from run config: it may hold a password.
    """
    from dagster_celery.executor import CeleryExecutor

    executor = CeleryExecutor(retries=RetryMode.ENABLED, **celery_app_args())
    check_broker(executor.broker)
    return executor


def send_executor(max_concurrent: int) -> dg.ExecutorDefinition:
    """The executor of `send_campaign`: `max_concurrent` lines at once on this machine, or the workers."""
    if executor_name() == CELERY:
        return celery_workers_executor
    return dg.multiprocess_executor.configured({"max_concurrent": max_concurrent})


def default_executor() -> dg.ExecutorDefinition | None:
    """The executor of jobs that name none (asset runs, `control_campaign`); None = Dagster's default."""
    return celery_workers_executor if executor_name() == CELERY else None


def io_managers() -> dict[str, dg.ConfigurableIOManager]:
    """Step outputs where every worker reads them, with Celery; Dagster's default otherwise."""
    if executor_name() == CELERY:
        from campaign_pipelines.resources.step_outputs import PostgresStepOutputs

        return {"io_manager": PostgresStepOutputs(url=dg.EnvVar("DATABASE_URL"))}
    return {}
