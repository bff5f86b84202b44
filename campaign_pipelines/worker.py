"""One Celery worker of the cluster: `python -m campaign_pipelines.worker [--name N] [--concurrency C]`.

Runs the steps that runs with CAMPAIGNS_EXECUTOR=celery queue on the broker of
CAMPAIGNS_BROKER_URL (dagster-celery's `execute_plan` task). Start one per machine (or
`make workers N=2` on one); each needs the code and the environment of the code location
(DATABASE_URL, REDIS_URL, providers' keys, ...: docs/deploy.md). Equivalent to
`dagster-celery worker start -A dagster_celery.app -y <config>` with our broker settings.
"""

from __future__ import annotations

import argparse
import importlib
import os
import uuid

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from campaign_pipelines import execution

# Lines one worker sends at once: each is a process, mostly waiting on provider calls.
DEFAULT_CONCURRENCY = 8


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m campaign_pipelines.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=f"campaigns-{uuid.uuid4().hex[:6]}", help="worker name (host appended)")
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="steps run at once (lines sending)"
    )
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    # The steps this worker runs load the code location as their run did: with Celery's
    # executor and the step outputs in the campaign database.
    os.environ[execution.EXECUTOR_ENV] = execution.CELERY
    # Loaded once here, before the pool forks: a step starts without importing it (about 2 s).
    importlib.import_module("campaign_pipelines.definitions")
    app = make_app(execution.celery_app_args())
    create_task(app)
    app.worker_main(
        [
            "worker",
            f"--loglevel={args.loglevel}",
            f"--hostname={args.name}@%h",
            f"--concurrency={args.concurrency}",
            # Reserve as few steps ahead as Celery allows: a step a busy worker holds waits for one
            # of its lines to end, which may take hours (docs/deploy.md: size the concurrency).
            "--prefetch-multiplier=1",
            f"--queues={execution.STEP_QUEUE}",
        ]
    )


if __name__ == "__main__":
    main()
