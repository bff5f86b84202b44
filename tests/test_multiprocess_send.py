"""One `send_campaign` run launched like production: a real instance on PostgreSQL, the multiprocess executor.

`execute_in_process` runs the lines one after the other in the test process; here
`dagster job execute` runs each `send_channel` step in its own spawned process, which resolves
DATABASE_URL / REDIS_URL / the API keys itself and calls the fake providers over loopback.
The fakes answer every call after a short delay, so sending takes seconds and the test can see
the three lines send at the same time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from campaign_pipelines.resources.quotas import QuotaResource
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from tests.fakes.providers import FakeProviders, Reply
from tests.fakes.server import running_fakes
from tests.sending.fixtures import BREVO, POSTMARK, REDIS_URL, SENDGRID

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CONTACTS = 1_500
BATCH = 10
# Each call is answered this late: with the calls a line keeps in flight (4 to 8 here), 150 calls
# make a few seconds of sending.
CALL_DELAY_S = 0.4


class TimedFakes(FakeProviders):
    """The fake providers, noting when each call arrived (uvicorn calls `handle` from one thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, list[float]] = {provider: [] for provider in ("brevo", "sendgrid", "postmark")}

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        self.arrivals[self.provider_of(path)].append(time.time())
        return super().handle(method, path, headers, body)


def overlap(windows: list[tuple[float, float]]) -> float:
    """Seconds during which every window was open at once (0 when they do not all meet)."""
    return max(0.0, min(end for _, end in windows) - max(start for start, _ in windows))


def test_three_lines_send_at_the_same_time_through_the_multiprocess_executor(
    db: psycopg.Connection,
    database_url: str,
    contacts_dir: Path,
    dagster_home: Path,
    make_campaign,
    quota_resource: QuotaResource,  # drops the run's Redis counters afterwards
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fakes = TimedFakes()
    with running_fakes(fakes) as fake:
        # A daily quota on each line, so the step processes take their counters in Redis.
        lines = [{**spec, "max_daily_sends": 1_000} for spec in (BREVO, SENDGRID, POSTMARK)]
        setup = make_campaign(CONTACTS, lines, base=fake.url, launch=False)
        db.execute("UPDATE servers SET batch_size = %s", (BATCH,))
        for provider in fakes.arrivals:
            fakes.delay_next(provider, CALL_DELAY_S, times=CONTACTS)
        config = tmp_path / "run_config.yaml"
        config.write_text(f"ops:\n  plan_channels:\n    config:\n      campaign_id: {setup.campaign_id}\n")
        env = {
            **os.environ,  # holds the provider keys (provider_keys fixture)
            "DAGSTER_HOME": str(dagster_home),
            "DATABASE_URL": database_url,
            "CONTACTS_DIR": str(contacts_dir),
            "REDIS_URL": REDIS_URL,
            "TRACKING_BASE_URL": "https://t.example.com",
            "TRACKING_SECRET": "test-secret",
        }
        command = [str(Path(sys.executable).with_name("dagster")), "job", "execute"]
        command += ["-m", "campaign_pipelines.definitions", "-j", "send_campaign", "-c", str(config)]

        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=90, check=False)

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Executing steps using multiprocess executor" in output

    # Every contact sent exactly once, by one of the three lines.
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: CONTACTS}
    recipients = [message.to for message in fakes.messages()]
    assert len(recipients) == len(set(recipients)) == CONTACTS
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None
    assert (campaign.status, campaign.sent_count) == ("completed", CONTACTS)
    line_states = line_sql.lines_of(db, setup.campaign_id)
    assert sum(line.sent_count for line in line_states) == CONTACTS
    assert all(line.status == "done" and line.sent_count > 0 for line in line_states)

    # The three providers were called during a common stretch of time, each many times in it.
    windows = {provider: (min(times), max(times)) for provider, times in fakes.arrivals.items()}
    common = overlap(list(windows.values()))
    assert common > 1.0, windows
    start = max(first for first, _ in windows.values())
    for provider, times in fakes.arrivals.items():
        assert sum(start <= t <= start + common for t in times) >= 5, (provider, windows)

    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.job_name == "send_campaign"
        events = [entry for entry in instance.all_logs(run.run_id) if entry.dagster_event]
    # Three send_channel steps, each in its own process, running at the same time.
    steps: dict[str, dict[str, float]] = {}
    pids: dict[str, int] = {}
    for entry in events:
        event = entry.dagster_event
        assert event is not None
        if event.step_key and event.step_key.startswith("send_channel["):
            if event.event_type == dg.DagsterEventType.STEP_START:
                steps.setdefault(event.step_key, {})["start"] = entry.timestamp
                pids[event.step_key] = event.pid
            elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
                steps.setdefault(event.step_key, {})["end"] = entry.timestamp
    assert set(steps) == {f"send_channel[line_{line_id}]" for line_id in setup.line_ids}
    assert len(set(pids.values())) == 3
    assert overlap([(step["start"], step["end"]) for step in steps.values()]) > 1.0, steps
