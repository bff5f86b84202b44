"""The bulk loader and the campaign import against a real PostgreSQL."""

from __future__ import annotations

import gc
import gzip
import json
import shutil
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.contacts.campaign_import import import_campaign
from campaign_pipelines.contacts.file_errors import ContactFileError
from campaign_pipelines.contacts.loader import import_contact_files
from campaign_pipelines.errors import ValidationError
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.contacts import contact_table, contacts_by_email

SEED_FILES = Path(__file__).resolve().parents[2] / "contacts"


def _write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


@pytest.fixture
def connector(database_url: str):
    return lambda: connect(database_url)


@pytest.fixture
def campaign(db: psycopg.Connection, contacts_dir: Path) -> int:
    """A configured campaign on the seed's two files."""
    for name in ("nouveaux_inscrits.json", "clients_vip.json"):
        shutil.copy(SEED_FILES / name, contacts_dir / name)
    servers.add_server(db, servers.ServerSpec(name="Sandbox", provider="sandbox"))
    templates.save_template(db, "promo", "<p>Bonjour {{ first_name }}</p>")
    campaign_id = campaigns.create_campaign(db, name="Black Friday", subject="Offres", template="promo")
    campaigns.configure_campaign(
        db,
        campaign_id,
        contact_files=["nouveaux_inscrits.json", "clients_vip.json"],
        lines=[campaigns.LineSpec("L'équipe Promo", "offres@mondomaine.com", "Sandbox")],
        contacts_dir=contacts_dir,
    )
    return campaign_id


def test_seed_files_import_to_the_expected_contacts(db, connector, campaign: int, contacts_dir: Path) -> None:
    report = import_campaign(connector, campaign, contacts_dir)

    contacts = contacts_by_email(db, campaign)
    assert report.records_read == 11
    assert report.valid_records == 9
    assert report.nbre_contacts == len(contacts) == 7
    assert report.duplicates_merged == 2
    assert report.invalid == {"invalid_email": 1, "missing_email": 1}
    # The last record wins: clients_vip.json comes second and overrides nouveaux_inscrits.json.
    assert contacts["bruno.petit@example.com"]["segment"] == "vip"
    assert contacts["bruno.petit@example.com"]["tier"] == "gold"
    assert contacts["emma.moreau@example.com"]["last_name"] == "Moreau-Blanc"
    assert contacts["alice.martin@example.com"] == {
        "first_name": "Alice",
        "last_name": "Martin",
        "city": "Lyon",
        "segment": "new",
    }
    row = campaign_sql.campaign_by_id(db, campaign)
    assert (row.status, row.nbre_contacts, row.error) == ("scheduled", 7, None)


def test_importing_twice_changes_nothing(db, connector, campaign: int, contacts_dir: Path) -> None:
    import_campaign(connector, campaign, contacts_dir)
    rows = sql.SQL("SELECT id, email, attributes, xmin::text FROM {} ORDER BY id").format(contact_table(campaign))
    before = db.execute(rows)
    before_rows = before.fetchall()

    again = import_campaign(connector, campaign, contacts_dir)

    after_rows = db.execute(rows).fetchall()
    assert after_rows == before_rows  # same rows, not even rewritten (same xmin)
    assert (again.new_contacts, again.updated_contacts, again.nbre_contacts) == (0, 0, 7)


@pytest.mark.parametrize("split_merges", [False, True], ids=["one_connection", "merges_split_in_two"])
def test_duplicates_merge_within_and_across_batches_and_files(
    db, connector, tmp_path: Path, split_merges: bool
) -> None:
    first = _write_json(
        tmp_path / "a.json",
        [{"email": f"user{i}@example.com", "version": 1} for i in range(500)]
        + [{"email": "USER7@example.com ", "version": 2}],
    )
    second = tmp_path / "b.ndjson.gz"
    second.write_bytes(
        gzip.compress(
            "".join(
                json.dumps({"email": f"user{i}@example.com", "version": 3}) + "\n" for i in range(250, 300)
            ).encode()
        )
    )
    report = import_contact_files(connector, 41, [first, second], batch_size=64, writers=2, split_merges=split_merges)

    contacts = contacts_by_email(db, 41)
    assert len(contacts) == report.nbre_contacts == 500
    assert report.new_contacts == 500
    assert report.duplicates_merged == report.updated_contacts == 51
    assert contacts["user7@example.com"] == {"version": 2}
    assert contacts["user260@example.com"] == {"version": 3}
    assert contacts["user0@example.com"] == {"version": 1}


@pytest.mark.parametrize("refused", [0, 19], ids=["in_the_writers_half", "in_the_helpers_half"])
def test_a_merge_that_fails_in_either_half_fails_the_import(db, connector, tmp_path: Path, refused: int) -> None:
    contacts = [{"email": f"user{i}@example.com", "version": 1} for i in range(20)]
    import_contact_files(connector, 42, [_write_json(tmp_path / "a.json", contacts)])
    # PostgreSQL refuses to update one contact: only a merge updates, and this batch of known
    # emails is merged in two halves of ten.
    db.execute(
        "CREATE OR REPLACE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.email = 'user{refused}@example.com' THEN RAISE check_violation USING MESSAGE = 'refused';"
        " END IF; RETURN NEW; END $$"
    )
    db.execute(
        sql.SQL("CREATE TRIGGER refuse BEFORE UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION refuse_update()").format(
            contact_table(42)
        )
    )
    updates = [{"email": f"user{i}@example.com", "version": 2} for i in range(20)]

    with pytest.raises(psycopg.errors.CheckViolation, match="refused"):
        import_contact_files(connector, 42, [_write_json(tmp_path / "b.json", updates)], split_merges=True)

    assert contacts_by_email(db, 42)[f"user{refused}@example.com"] == {"version": 1}


def test_blacklisted_contacts_are_counted_out(db, connector, tmp_path: Path) -> None:
    db.execute("INSERT INTO blacklist (email, reason) VALUES ('b@example.com', 'unsubscribed')")
    path = _write_json(tmp_path / "c.json", [{"email": "a@example.com"}, {"email": "B@example.com"}])

    report = import_contact_files(connector, 42, [path])

    assert (report.nbre_contacts, report.blacklisted_contacts) == (2, 1)


def test_skipped_records_are_counted_with_short_samples(connector, tmp_path: Path) -> None:
    records = [{"email": f"bad{i}"} for i in range(15)] + ["text", 3, {"email": "ok@example.com"}]
    report = import_contact_files(connector, 43, [_write_json(tmp_path / "d.json", records)])

    assert report.invalid == {"invalid_email": 15, "not_an_object": 2}
    assert len(report.samples["invalid_email"]) == 10
    assert report.samples["invalid_email"][0] == "d.json #0: email='bad0'"
    assert report.nbre_contacts == 1


def test_malformed_file_fails_the_campaign_then_a_fixed_file_completes(
    db, connector, campaign: int, contacts_dir: Path
) -> None:
    good = [{"email": f"person{i}@example.com", "n": i} for i in range(100)]
    broken_text = json.dumps(good)[:-1] + ', {"email": "late@example.com", "n": }]'
    (contacts_dir / "clients_vip.json").write_text(broken_text, encoding="utf-8")

    with pytest.raises(ContactFileError) as caught:
        import_campaign(connector, campaign, contacts_dir)

    failed = campaign_sql.campaign_by_id(db, campaign)
    assert failed.status == "failed"
    assert "clients_vip.json" in failed.error and f"byte offset {caught.value.offset}" in failed.error

    _write_json(contacts_dir / "clients_vip.json", [*good, {"email": "late@example.com", "n": 100}])
    report = import_campaign(connector, campaign, contacts_dir)

    emails = [r[0] for r in db.execute(sql.SQL("SELECT email FROM {}").format(contact_table(campaign)))]
    assert len(emails) == len(set(emails)) == report.nbre_contacts == 5 + 101
    assert campaign_sql.campaign_by_id(db, campaign).status == "scheduled"


def test_a_draft_campaign_cannot_be_imported(db, connector, contacts_dir: Path) -> None:
    templates.save_template(db, "t", "<p>x</p>")
    draft = campaigns.create_campaign(db, name="Draft", subject="s", template="t")

    with pytest.raises(ValidationError, match="status is 'draft'"):
        import_campaign(connector, draft, contacts_dir)
    assert campaign_sql.campaign_by_id(db, draft).status == "draft"


def test_two_imports_of_one_campaign_never_run_at_once(db, connector, campaign: int, contacts_dir: Path) -> None:
    with connect(db.info.dsn) as other:
        assert campaign_sql.try_lock_import(other, campaign)
        with pytest.raises(ValidationError, match="another import"):
            import_campaign(connector, campaign, contacts_dir)


def test_a_file_moved_outside_the_contacts_dir_is_never_read(db, connector, campaign: int, contacts_dir: Path) -> None:
    db.execute("UPDATE campaigns SET contact_files = %s WHERE id = %s", (["../secrets.json"], campaign))

    with pytest.raises(ValidationError, match="outside the contacts directory"):
        import_campaign(connector, campaign, contacts_dir)
    assert campaign_sql.campaign_by_id(db, campaign).status == "failed"


def test_reconfiguring_with_fewer_files_drops_the_removed_contacts(
    db, connector, campaign: int, contacts_dir: Path
) -> None:
    import_campaign(connector, campaign, contacts_dir)
    campaigns.configure_campaign(
        db,
        campaign,
        contact_files=["clients_vip.json"],
        lines=[campaigns.LineSpec("L'équipe Promo", "offres@mondomaine.com", "Sandbox")],
        contacts_dir=contacts_dir,
    )

    report = import_campaign(connector, campaign, contacts_dir)

    assert report.nbre_contacts == len(contacts_by_email(db, campaign)) == 4


def test_the_import_gives_the_interpreter_settings_back(connector, tmp_path: Path) -> None:
    before = sys.getswitchinterval(), gc.get_threshold()
    broken = tmp_path / "broken.json"
    broken.write_text('[{"email": "a@example.com"}, oops]', encoding="utf-8")

    import_contact_files(connector, 44, [_write_json(tmp_path / "e.json", [{"email": "a@example.com"}])])
    with pytest.raises(ContactFileError):
        import_contact_files(connector, 44, [broken])

    assert (sys.getswitchinterval(), gc.get_threshold()) == before
