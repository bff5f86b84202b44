"""A contact import launched like production: a real instance on PostgreSQL, the multiprocess executor.

`execute_in_process` and `materialize` run every step in the test process; this runs
`dagster asset materialize`, whose run executes each step in a spawned process that
re-imports the code location and resolves DATABASE_URL / CONTACTS_DIR itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from campaign_pipelines import campaigns
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store.contacts import contact_table
from tests.support import BREVO_SERVER, SEED_FILES

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def campaign_id(db: psycopg.Connection, draft: int, contacts_dir: Path) -> int:
    """The seed's campaign, configured with its two files and awaiting its import."""
    campaigns.configure_campaign(
        db,
        draft,
        contact_files=SEED_FILES,
        lines=[campaigns.LineSpec("L'équipe Promo", "offres@mondomaine.com", BREVO_SERVER)],
        contacts_dir=contacts_dir,
    )
    return draft


def test_the_import_runs_through_the_multiprocess_executor(
    db: psycopg.Connection,
    dagster_home: Path,
    database_url: str,
    contacts_dir: Path,
    campaign_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    partition = str(campaign_id)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("campaign", [partition])
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "DATABASE_URL": database_url,
        "CONTACTS_DIR": str(contacts_dir),
    }
    command = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize"]
    command += ["-m", "campaign_pipelines.definitions", "--select", "campaign_contacts", "--partition", partition]

    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Executing steps using multiprocess executor" in output
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == partition
        events = [entry.dagster_event for entry in instance.all_logs(run.run_id) if entry.dagster_event]
        # The step ran in its own process, not in the run's.
        workers = [event for event in events if event.event_type == dg.DagsterEventType.STEP_WORKER_STARTED]
        assert [event.step_key for event in workers] == ["campaign_contacts"]
        step_pid = next(event.pid for event in events if event.event_type == dg.DagsterEventType.STEP_START)
        run_pid = next(event.pid for event in events if event.event_type == dg.DagsterEventType.RUN_START)
        assert step_pid != run_pid
    campaign = campaign_sql.campaign_by_id(db, campaign_id)
    assert campaign is not None
    assert (campaign.status, campaign.nbre_contacts) == ("scheduled", 7)
    table = contact_table(campaign_id)
    assert db.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone() == (7,)
