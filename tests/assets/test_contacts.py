"""`campaign_contacts` materialized in-process into the real database, one campaign partition at a time."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from campaign_pipelines import campaigns
from campaign_pipelines.assets.contacts import campaign_contacts
from campaign_pipelines.resources.contact_files import ContactFilesResource
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store.contacts import contact_table
from tests.support import BREVO_SERVER, SEED_FILES, step_error

SEED_EMAILS = [
    "alice.martin@example.com",
    "bruno.petit@example.com",
    "chloe.durand@example.org",
    "david.leroy@example.net",
    "emma.moreau@example.com",
    "farid.benali@example.com",
    "gaelle.roux@example.fr",
]
LINE = campaigns.LineSpec(sender_name="L'équipe Promo", sender_email="offres@mondomaine.com", server=BREVO_SERVER)
BROKEN = '[{"email": "zoe@example.com"},\n {"email": oops}]\n'
FIXED = '[{"email": "zoe@example.com"},\n {"email": "yann@example.com"}]\n'


@pytest.fixture
def materialize(instance: dg.DagsterInstance, database_url: str, contacts_dir: Path):
    """Materializes one partition, adding it first as the sensor would; failures are returned."""
    resources = {
        "database": PostgresResource(url=database_url),
        "contact_files": ContactFilesResource(directory=str(contacts_dir)),
    }

    def materialize(partition_key: str) -> dg.ExecuteInProcessResult:
        instance.add_dynamic_partitions("campaign", [partition_key])
        return dg.materialize(
            [campaign_contacts],
            partition_key=partition_key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )

    return materialize


def configure(db: psycopg.Connection, campaign_id: int, contacts_dir: Path, files: list[str]) -> None:
    campaigns.configure_campaign(db, campaign_id, contact_files=files, lines=[LINE], contacts_dir=contacts_dir)


def emails_of(db: psycopg.Connection, campaign_id: int) -> list[str]:
    """Every row of the campaign's contact table, duplicates included."""
    table = contact_table(campaign_id)
    return [row[0] for row in db.execute(sql.SQL("SELECT email FROM {} ORDER BY email").format(table))]


def test_the_seed_files_import_seven_contacts(
    db: psycopg.Connection, materialize, draft: int, contacts_dir: Path
) -> None:
    configure(db, draft, contacts_dir, SEED_FILES)

    result = materialize(str(draft))

    assert result.success
    assert emails_of(db, draft) == SEED_EMAILS
    (materialization,) = result.asset_materializations_for_node("campaign_contacts")
    assert materialization.partition == str(draft)
    metadata = materialization.metadata
    assert metadata["files"] == dg.MetadataValue.json(SEED_FILES)
    assert metadata["records_read"] == dg.MetadataValue.int(11)
    assert metadata["imported"] == dg.MetadataValue.int(9)
    assert metadata["duplicates_merged"] == dg.MetadataValue.int(2)
    assert metadata["nbre_contacts"] == dg.MetadataValue.int(7)
    assert metadata["invalid_by_reason"] == dg.MetadataValue.json({"invalid_email": 1, "missing_email": 1})
    samples = metadata["invalid_samples"].value
    assert set(samples) == {"invalid_email", "missing_email"}
    assert samples["invalid_email"] == ["nouveaux_inscrits.json #5: email='not-an-address'"]
    assert isinstance(metadata["records_per_s"], dg.IntMetadataValue) and metadata["records_per_s"].value > 0
    assert isinstance(metadata["duration_s"], dg.FloatMetadataValue) and metadata["duration_s"].value >= 0
    campaign = campaign_sql.campaign_by_id(db, draft)
    assert campaign is not None
    assert (campaign.status, campaign.nbre_contacts, campaign.error) == ("scheduled", 7, None)


def test_a_malformed_file_fails_the_campaign_then_a_fixed_file_imports_without_duplicates(
    db: psycopg.Connection, materialize, draft: int, contacts_dir: Path
) -> None:
    broken = contacts_dir / "relances.json"
    broken.write_text(BROKEN, encoding="utf-8")
    configure(db, draft, contacts_dir, [*SEED_FILES, "relances.json"])

    failed = materialize(str(draft))

    assert not failed.success
    offset = BROKEN.index("oops")
    expected = f"contact file 'relances.json' is not valid JSON at byte offset {offset}"
    assert expected in step_error(failed)
    campaign = campaign_sql.campaign_by_id(db, draft)
    assert campaign is not None
    assert campaign.status == "failed"
    assert campaign.error is not None and campaign.error.startswith(expected)

    broken.write_text(FIXED, encoding="utf-8")
    fixed = materialize(str(draft))

    assert fixed.success
    assert emails_of(db, draft) == sorted([*SEED_EMAILS, "yann@example.com", "zoe@example.com"])
    campaign = campaign_sql.campaign_by_id(db, draft)
    assert campaign is not None
    assert (campaign.status, campaign.nbre_contacts, campaign.error) == ("scheduled", 9, None)


def arabic_indic(number: int) -> str:
    return "".join(chr(0x0660 + int(digit)) for digit in str(number))


@pytest.mark.parametrize(
    "key_of",
    [lambda _: "black-friday", lambda _: "²", lambda id_: f"00{id_}", arabic_indic],
    ids=["words", "superscript", "leading-zeros", "arabic-indic-digits"],
)
def test_a_partition_that_is_not_a_campaign_id_fails_clearly(
    db: psycopg.Connection, materialize, draft: int, contacts_dir: Path, key_of
) -> None:
    """Only the key campaign_key writes: never the campaign's import under a stray partition."""
    configure(db, draft, contacts_dir, SEED_FILES)
    key = key_of(draft)

    result = materialize(key)

    assert not result.success
    assert f"partition '{key}' is not a campaign id" in step_error(result)
    campaign = campaign_sql.campaign_by_id(db, draft)
    assert campaign is not None
    assert (campaign.status, campaign.nbre_contacts) == ("scheduled", 0)
