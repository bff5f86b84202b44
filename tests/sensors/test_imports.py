"""`campaign_import_sensor` evaluated against the real database and a test instance."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
import pytest

from campaign_pipelines import campaigns
from campaign_pipelines.assets.contacts import campaign_contacts
from campaign_pipelines.contacts.campaign_import import import_campaign
from campaign_pipelines.resources.contact_files import ContactFilesResource
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.sensors.imports import campaign_import_sensor
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store.connection import connect
from tests.support import BREVO_SERVER

LINE = campaigns.LineSpec(sender_name="L'équipe Promo", sender_email="offres@mondomaine.com", server=BREVO_SERVER)


@pytest.fixture
def evaluate(instance: dg.DagsterInstance, database_url: str):
    """Calls the sensor as the daemon would, once per call (a tick)."""

    def evaluate() -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, resources={"database": PostgresResource(url=database_url)})
        result = campaign_import_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    return evaluate


def configure(db: psycopg.Connection, campaign_id: int, contacts_dir: Path) -> None:
    campaigns.configure_campaign(
        db, campaign_id, contact_files=["clients_vip.json"], lines=[LINE], contacts_dir=contacts_dir
    )


def test_nothing_configured_skips(db: psycopg.Connection, evaluate, draft: int) -> None:
    result = evaluate()

    assert result.run_requests == []
    assert result.dynamic_partitions_requests == []
    assert result.skip_reason is not None
    assert result.skip_reason.skip_message == "no campaign awaits its import"


def test_a_configured_campaign_gets_its_partition_and_one_import(
    db: psycopg.Connection, evaluate, draft: int, contacts_dir: Path
) -> None:
    configure(db, draft, contacts_dir)

    result = evaluate()

    assert result.skip_reason is None
    (request,) = result.run_requests
    assert request.partition_key == str(draft)
    assert request.tags == {"campaign": str(draft)}
    assert result.dynamic_partitions_requests == [dg.AddDynamicPartitionsRequest("campaign", [str(draft)])]
    # The same configuration on the next tick: the same run_key, so the daemon launches it once.
    assert [request.run_key for request in evaluate().run_requests] == [request.run_key]


def test_no_partition_request_when_the_partition_exists(
    db: psycopg.Connection, evaluate, instance: dg.DagsterInstance, draft: int, contacts_dir: Path
) -> None:
    configure(db, draft, contacts_dir)
    instance.add_dynamic_partitions("campaign", [str(draft)])

    result = evaluate()

    assert [request.partition_key for request in result.run_requests] == [str(draft)]
    assert result.dynamic_partitions_requests == []


def test_the_request_resolves_to_the_campaign_contacts_partition(
    db: psycopg.Connection, instance: dg.DagsterInstance, database_url: str, draft: int, contacts_dir: Path
) -> None:
    """As the daemon resolves it: the partition is valid once the tick's add request applies."""
    configure(db, draft, contacts_dir)
    resources = {
        "database": PostgresResource(url=database_url),
        "contact_files": ContactFilesResource(directory=str(contacts_dir)),
    }
    definitions = dg.Definitions(assets=[campaign_contacts], sensors=[campaign_import_sensor], resources=resources)
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), definitions=definitions, resources=resources
    )

    tick = campaign_import_sensor.evaluate_tick(context)

    (request,) = tick.run_requests
    assert request.asset_selection == [dg.AssetKey("campaign_contacts")]
    assert request.tags["dagster/partition"] == str(draft)


def test_an_imported_campaign_requests_nothing(
    db: psycopg.Connection, evaluate, database_url: str, draft: int, contacts_dir: Path
) -> None:
    configure(db, draft, contacts_dir)
    import_campaign(lambda: connect(database_url), draft, contacts_dir)

    result = evaluate()

    assert result.run_requests == []
    assert result.skip_reason is not None


def test_configuring_again_requests_a_new_import(
    db: psycopg.Connection, evaluate, database_url: str, draft: int, contacts_dir: Path
) -> None:
    configure(db, draft, contacts_dir)
    (first,) = evaluate().run_requests
    import_campaign(lambda: connect(database_url), draft, contacts_dir)

    configure(db, draft, contacts_dir)
    (second,) = evaluate().run_requests

    assert second.partition_key == first.partition_key == str(draft)
    assert second.run_key != first.run_key


def test_an_import_whose_process_died_is_started_again(
    db: psycopg.Connection, database_url: str, evaluate, draft: int, contacts_dir: Path
) -> None:
    configure(db, draft, contacts_dir)
    import_campaign(lambda: connect(database_url), draft, contacts_dir)
    # As a killed import leaves it: processing, and no process holding the campaign's import lock.
    db.execute("UPDATE campaigns SET status = 'processing', updated_at = now() WHERE id = %s", (draft,))

    (request,) = evaluate().run_requests
    assert request.partition_key == str(draft) and "-retry-" in request.run_key

    with connect(database_url) as live_import:
        assert campaign_sql.try_lock_import(live_import, draft)
        assert evaluate().run_requests == []  # a live import is left alone
