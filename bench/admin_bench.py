"""Admin form benchmark: `register_server` runs launched as the Dagster UI launches them, under `make dev`.

On a fresh database of the shared server (DATABASE_URL's, else 127.0.0.1:5432, else embedded),
`python -m campaign_pipelines.devserver` (what `make dev` runs: `dagster dev` with the repo's
dagster.yaml, its queued run coordinator and daemon, and Dagster's storage in that PostgreSQL)
starts on free ports. Once its code location is loaded, `--runs` runs of `register_server`
(a sandbox server each) are launched one after the other through GraphQL's
launchPipelineExecution, the Launchpad's own call, and polled until they end. Per run:
- submit→success: from the launch request to the run seen ended (polled every 50 ms);
- queued: RUN_ENQUEUED → RUN_STARTING (until the daemon's next dequeue, every second);
- worker start: RUN_STARTING → RUN_START (the code server spawns the run worker, which imports
  the code location and opens the instance);
- run: RUN_START → RUN_SUCCESS, the run's own duration (its step and the storage round trips).
Then, in the same run, the run worker's import on its own (`import dagster._grpc.impl`, what a
spawned worker unpickles first, then `campaign_pipelines.definitions`) against the floor of
importing dagster alone, best of `--imports` fresh interpreters each.
Human lines go to stderr; the last line is one JSON object:
{"runs", "submit_to_success_s" (median), "run_s" (median), "worker_start_s" (median),
"import_s", "dagster_import_s", "import_vs_dagster"}.

    python bench/admin_bench.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _database import scratch_database

_ROOT = Path(__file__).resolve().parents[1]
_LOCATION = "campaign_pipelines"
_START_TIMEOUT_S = 180
_RUN_TIMEOUT_S = 120
_STOP_TIMEOUT_S = 30
_POLL_S = 0.05

_LOCATION_STATUS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
_LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
_STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
_EVENTS = """
query Events($id: ID!) {
  logsForRun(runId: $id, limit: 1000) {
    ... on EventConnection { events { __typename ... on MessageEvent { timestamp } } }
  }
}
"""
_ENDED = {"SUCCESS", "FAILURE", "CANCELED"}
_PHASES = {
    "queued": ("RunEnqueuedEvent", "RunStartingEvent"),
    "worker_start": ("RunStartingEvent", "RunStartEvent"),
    "run": ("RunStartEvent", "RunSuccessEvent"),
}
# What a run worker imports: the module its spawned process unpickles its arguments from, then the code.
_WORKER_IMPORT = "import dagster._grpc.impl, campaign_pipelines.definitions"
_FLOOR_IMPORT = "import dagster._grpc.impl"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_devserver(url: str, home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    dagster_port, tracking_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CAMPAIGNS_HOME": str(home),
        "CONTACTS_DIR": str(home / "contacts"),
        "DAGSTER_PORT": str(dagster_port),
        "TRACKING_PORT": str(tracking_port),
    }
    with log.open("wb") as out:  # a file, not a pipe: dagster's logs would fill a pipe nobody reads
        process = subprocess.Popen(
            [sys.executable, "-m", "campaign_pipelines.devserver"],
            cwd=_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{dagster_port}"


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM lets the devserver stop its children; SIGKILL only if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_location(client: httpx.Client, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the devserver exited ({process.returncode}):\n{log.read_text()}")
        try:
            entries = _graphql(client, _LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            if any(entry["name"] == _LOCATION and entry["loadStatus"] == "LOADED" for entry in entries):
                return
        except (httpx.HTTPError, KeyError, TypeError):
            pass  # the UI is not answering yet
        time.sleep(0.5)
    raise SystemExit(f"code location {_LOCATION} not loaded within {_START_TIMEOUT_S} s:\n{log.read_text()}")


def _graphql(client: httpx.Client, query: str, **variables: object) -> dict:
    answer = client.post("/graphql", json={"query": query, "variables": variables})
    answer.raise_for_status()
    return answer.json()["data"]


def _launch(client: httpx.Client, number: int) -> str:
    config = {"ops": {"save_server": {"config": {"name": f"bench {number}", "provider": "sandbox"}}}}
    params = {
        "selector": {
            "repositoryLocationName": _LOCATION,
            "repositoryName": "__repository__",
            "pipelineName": "register_server",
        },
        "runConfigData": config,
    }
    result = _graphql(client, _LAUNCH, params=params)["launchPipelineExecution"]
    if result["__typename"] != "LaunchRunSuccess":
        raise SystemExit(f"launch refused: {result}")
    return result["run"]["runId"]


def _wait_for_end(client: httpx.Client, run_id: str) -> str:
    deadline = time.monotonic() + _RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        status = _graphql(client, _STATUS, id=run_id)["runOrError"]["status"]
        if status in _ENDED:
            return status
        time.sleep(_POLL_S)
    raise SystemExit(f"run {run_id} not ended within {_RUN_TIMEOUT_S} s")


def _phases(client: httpx.Client, run_id: str) -> dict[str, float]:
    events = _graphql(client, _EVENTS, id=run_id)["logsForRun"]["events"]
    first: dict[str, float] = {}
    for event in events:
        first.setdefault(event["__typename"], int(event["timestamp"]) / 1000)
    return {name: first[end] - first[start] for name, (start, end) in _PHASES.items()}


def _one_run(client: httpx.Client, number: int) -> dict[str, float]:
    started = time.perf_counter()
    run_id = _launch(client, number)
    status = _wait_for_end(client, run_id)
    elapsed = time.perf_counter() - started
    if status != "SUCCESS":
        raise SystemExit(f"run {run_id} ended {status}")
    return {"submit_to_success": elapsed, **_phases(client, run_id)}


def _import_s(statement: str, tries: int) -> float:
    """Best of `tries` fresh interpreters: the seconds `statement` takes to import."""
    program = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    times = []
    for _ in range(tries):
        result = subprocess.run([sys.executable, "-c", program], cwd=_ROOT, capture_output=True, text=True, check=True)
        times.append(float(result.stdout))
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="register_server runs, one after the other")
    parser.add_argument("--imports", type=int, default=5, help="fresh interpreters per import measurement")
    args = parser.parse_args()

    with scratch_database() as url, tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "devserver.log"
        process, base_url = _start_devserver(url, Path(tmp) / "home", log)
        try:
            with httpx.Client(base_url=base_url, timeout=30) as client:
                _wait_for_location(client, process, log)
                _one_run(client, 0)  # warm-up: the first launch also snapshots the job
                runs = []
                for number in range(1, args.runs + 1):
                    run = _one_run(client, number)
                    runs.append(run)
                    print(
                        f"run {number}: submit→success {run['submit_to_success']:.2f} s"
                        f" (queued {run['queued']:.2f}, worker start {run['worker_start']:.2f},"
                        f" run {run['run']:.2f})",
                        file=sys.stderr,
                    )
        finally:
            _stop(process)
    import_s = _import_s(_WORKER_IMPORT, args.imports)
    dagster_import_s = _import_s(_FLOOR_IMPORT, args.imports)
    print(
        f"run worker's import {import_s:.2f} s, dagster's alone {dagster_import_s:.2f} s"
        f" ({import_s / dagster_import_s:.2f}x)",
        file=sys.stderr,
    )
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(
        json.dumps(
            {
                "runs": len(runs),
                "submit_to_success_s": round(median["submit_to_success"], 2),
                "run_s": round(median["run"], 2),
                "worker_start_s": round(median["worker_start"], 2),
                "queued_s": round(median["queued"], 2),
                "import_s": round(import_s, 2),
                "dagster_import_s": round(dagster_import_s, 2),
                "import_vs_dagster": round(import_s / dagster_import_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
