"""A contact import launched like production: a real instance on PostgreSQL, the multiprocess executor.

`execute_in_process` and `materialize` run every step in the test process; this runs
`dagster asset materialize`, whose run executes each step in a spawned process that
re-imports the code location and resolves DATABASE_URL / CONTACTS_DIR itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.settings import as_sqlalchemy_url, with_database
from campaign_pipelines.store import campaigns as campaign_sql

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SEED_FILES = ["nouveaux_inscrits.json", "clients_vip.json"]


@pytest.fixture
def dagster_home(tmp_path: Path, pg_server_url: str) -> Iterator[Path]:
    """A DAGSTER_HOME whose runs and events live in their own PostgreSQL database, as with `make dev`."""
    name = f"cp_dagster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    home = tmp_path / "dagster_home"
    home.mkdir()
    storage_url = as_sqlalchemy_url(with_database(pg_server_url, name))
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: '{storage_url}'\ntelemetry:\n  enabled: false\n", encoding="utf-8"
    )
    yield home
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def campaign_id(db: psycopg.Connection, contacts_dir: Path) -> int:
    """The seed's campaign, configured with its two files and awaiting its import."""
    servers.save_server(db, servers.ServerSpec(name="Sandbox", provider="sandbox"))
    templates.save_template(db, "promo", "<p>Bonjour {{ first_name }}</p>")
    for name in SEED_FILES:
        shutil.copy(REPO / "contacts" / name, contacts_dir / name)
    campaign_id = campaigns.create_campaign(db, name="Black Friday 2025", subject="Offres", template="promo")
    campaigns.configure_campaign(
        db,
        campaign_id,
        contact_files=SEED_FILES,
        lines=[campaigns.LineSpec("L'équipe Promo", "offres@mondomaine.com", "Sandbox")],
        contacts_dir=contacts_dir,
    )
    return campaign_id


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
    table = sql.Identifier(f"contacts_campaign_{campaign_id}")
    assert db.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone() == (7,)
