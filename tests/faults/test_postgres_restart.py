"""The campaign database killed (SIGKILL of the whole server) and restarted on the same data:
mid-send, then mid-import. Dagster's own storage is elsewhere, so its runs are recorded throughout."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.contacts.loader import BATCH_SIZE
from campaign_pipelines.partitions import campaign_key
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.contacts import contact_table
from tests.fakes.server import FakeServer
from tests.faults.support import OwnPostgres, Runs, Tally, assert_never_twice, wait_for
from tests.sending.fixtures import SENDGRID

pytestmark = pytest.mark.faults

CONTACTS = 1_000
BATCH = 100
# The third call is held this long: the database dies while it is in flight.
HELD_S = 5.0
# Imported contacts: a few batches of the loader, so the kill lands between two of them.
IMPORTED = 3 * BATCH_SIZE + 5_000


def test_the_database_killed_mid_send_then_restarted(
    db: psycopg.Connection, database_url: str, pg: OwnPostgres, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup = make_campaign(CONTACTS, [SENDGRID], base=strict_fake.url, launch=False)
    # One call in flight at a time: the kill's arithmetic below counts calls in order (a window of calls at a
    # crash: tests/sending/test_crash.py, tests/faults/test_frozen_run.py).
    db.execute("UPDATE servers SET batch_size = %s, calls_in_flight = 1", (BATCH,))
    strict_fake.state.delay_next("sendgrid", HELD_S, after=2)
    run = runs.send(setup.campaign_id)
    wait_for(lambda: len(strict_fake.state.calls("sendgrid")) == 3, "the third provider call")
    wait_for(
        lambda: send_sql.status_counts(db, setup.campaign_id).get(ContactStatus.SENT) == 2 * BATCH,
        "two batches recorded",
    )

    pg.kill()
    pg.start()
    code = run.wait()

    with connect(database_url) as conn:
        if code != 0:
            # The step failed with its database: its line is relaunched now that the server is back.
            assert len(runs.relaunch_stalled(conn, setup.campaign_id)) == 1
            unknown = BATCH  # the call in flight at the kill could not be recorded
        else:
            unknown = 0  # the line waited for its database and recorded that call itself
        tally = assert_never_twice(conn, strict_fake.state, setup.campaign_id)
        campaign = campaign_sql.campaign_by_id(conn, setup.campaign_id)
    expected = Tally(delivered=CONTACTS, duplicates=0, sent=CONTACTS - unknown, failed=0, unknown=unknown, pending=0)
    assert tally == expected
    assert campaign is not None and campaign.status == "completed"


def _configured_campaign(db: psycopg.Connection, contacts_dir: Path) -> tuple[int, dict[str, str]]:
    """A campaign awaiting the import of one NDJSON file; returns it and each email's first name."""
    servers.save_server(db, servers.ServerSpec(name="Sandbox", provider="sandbox"))
    templates.save_template(db, "promo", "<p>Bonjour {{ first_name }}</p>")
    people = {f"import{i}@example.com": f"Person{i}" for i in range(IMPORTED)}
    (contacts_dir / "contacts.ndjson").write_text(
        "".join(json.dumps({"email": email, "first_name": name}) + "\n" for email, name in people.items())
    )
    campaign_id = campaigns.create_campaign(db, name="Import", subject="Offres", template="promo")
    campaigns.configure_campaign(
        db,
        campaign_id,
        contact_files=["contacts.ndjson"],
        lines=[campaigns.LineSpec("Promo", "offres@mondomaine.com", "Sandbox")],
        contacts_dir=contacts_dir,
    )
    return campaign_id, people


def test_the_database_killed_mid_import_then_restarted(
    db: psycopg.Connection, database_url: str, pg: OwnPostgres, contacts_dir: Path, runs: Runs
) -> None:
    campaign_id, people = _configured_campaign(db, contacts_dir)
    (request,) = runs.import_requests()
    assert request.partition_key == campaign_key(campaign_id)
    run = runs.materialize(campaign_key(campaign_id))
    table = contact_table(campaign_id)

    def waiting_on_table(locker: psycopg.Connection) -> bool:
        row = db.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND relation = to_regclass(%s) AND pid <> %s)",
            (table.as_string(db), locker.info.backend_pid),
        ).fetchone()
        return bool(row and row[0])

    wait_for(
        lambda: db.execute("SELECT to_regclass(%s)", (table.as_string(db),)).fetchone() != (None,),
        "the import to create its contact table",
    )
    # A SHARE lock lets nothing be written to the table: the import's next batch waits on it.
    # Let one batch through (the lock queue is first come, first served), then hold the next.
    locker = psycopg.connect(database_url)
    try:
        lock = sql.SQL("LOCK TABLE {} IN SHARE MODE").format(table)
        locker.execute("SET lock_timeout = '30s'")
        locker.execute(lock)
        wait_for(lambda: waiting_on_table(locker), "a batch of the import to wait for the table")
        locker.commit()
        locker.execute(lock)
        wait_for(lambda: waiting_on_table(locker), "the next batch of the import to wait for the table")
        (committed,) = locker.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone() or (0,)
        assert 0 < committed < IMPORTED
        pg.kill()
    finally:
        locker.close()
    pg.start()
    assert run.wait() != 0, "the import went on without its database"

    with connect(database_url) as conn:
        campaign = campaign_sql.campaign_by_id(conn, campaign_id)
        assert campaign is not None and campaign.status == "processing"
        # The sensor sees an import that died (no import holds the campaign's lock) and retries it.
        (retry,) = runs.import_requests()
        assert retry.partition_key == campaign_key(campaign_id)
        assert retry.run_key is not None and retry.run_key.startswith(f"import-{campaign_id}-retry-")
        runs.materialize(campaign_key(campaign_id)).succeeded()

        campaign = campaign_sql.campaign_by_id(conn, campaign_id)
        assert campaign is not None
        assert (campaign.status, campaign.nbre_contacts) == ("scheduled", IMPORTED)
        rows = conn.execute(sql.SQL("SELECT email, attributes->>'first_name' FROM {}").format(table)).fetchall()
    # Every contact once, with its own attributes.
    assert len(rows) == IMPORTED
    assert dict(rows) == people
