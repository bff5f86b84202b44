"""import_campaign: the campaign's status follows its import, whatever stops it."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.contacts.campaign_import import import_campaign
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store.connection import connect

CONTACTS = 60_000


@pytest.fixture
def configured(db: psycopg.Connection, contacts_dir: Path) -> int:
    servers.add_server(db, servers.ServerSpec(name="Sandbox", provider="sandbox"))
    templates.save_template(db, "promo", "<p>Bonjour {{ first_name }}</p>")
    campaign_id = campaigns.create_campaign(db, name="Black Friday", subject="Offres", template="promo")
    path = contacts_dir / "contacts.ndjson"
    path.write_text("".join(json.dumps({"email": f"user{i}@example.com"}) + "\n" for i in range(CONTACTS)))
    campaigns.configure_campaign(
        db,
        campaign_id,
        contact_files=[path.name],
        lines=[campaigns.LineSpec(sender_name="Promo", sender_email="promo@example.com", server="Sandbox")],
        contacts_dir=contacts_dir,
    )
    return campaign_id


def test_a_database_lost_mid_import_leaves_the_campaign_processing_with_the_reason(
    db: psycopg.Connection, database_url: str, contacts_dir: Path, configured: int
) -> None:
    def database_restarts(_report) -> None:
        # As a PostgreSQL restart does: every session of the import is cut.
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    with pytest.raises(psycopg.OperationalError):
        import_campaign(lambda: connect(database_url), configured, contacts_dir, on_progress=database_restarts)

    campaign = campaign_sql.campaign_by_id(db, configured)
    assert campaign is not None
    assert campaign.status == "processing"
    assert campaign.error is not None
    assert campaign.error.startswith("import interrupted, retried automatically: lost the database (")
    # No import holds the campaign any more: the import sensor starts it again.
    assert [campaign_id for campaign_id, _ in campaign_sql.interrupted_imports(db, 10)] == [configured]

    report = import_campaign(lambda: connect(database_url), configured, contacts_dir)

    assert report.nbre_contacts == CONTACTS
    campaign = campaign_sql.campaign_by_id(db, configured)
    assert campaign is not None and (campaign.status, campaign.error) == ("scheduled", None)


def test_a_database_lost_after_the_last_batch_is_an_interruption_too(
    db: psycopg.Connection, database_url: str, contacts_dir: Path, configured: int
) -> None:
    # The import's own session (its first connection) is cut; its writers finish every batch.
    sessions: list[int] = []

    def connecting() -> psycopg.Connection:
        conn = connect(database_url)
        sessions.append(conn.info.backend_pid)
        return conn

    def own_session_cut(_report) -> None:
        db.execute("SELECT pg_terminate_backend(%s)", (sessions[0],))

    with pytest.raises(psycopg.OperationalError):
        import_campaign(connecting, configured, contacts_dir, on_progress=own_session_cut)

    campaign = campaign_sql.campaign_by_id(db, configured)
    assert campaign is not None and campaign.status == "processing"
    assert campaign.error is not None
    assert campaign.error.startswith("import interrupted, retried automatically: lost the database (")
