"""The contact table's bulk load: straight COPY of new emails, staging upsert for the rest."""

from __future__ import annotations

from campaign_pipelines.store import contacts as contact_sql

CAMPAIGN = 7


def _rows(*pairs: tuple[str, str]) -> list[bytes]:
    return [f"{email}\t{attributes}\n".encode() for email, attributes in pairs]


def test_new_emails_are_copied_straight_in(db) -> None:
    contact_sql.create_contact_table(db, CAMPAIGN)

    copied = contact_sql.copy_new_contacts(db, CAMPAIGN, _rows(("a@example.com", '{"n": 1}'), ("b@example.com", "{}")))

    assert copied
    assert contact_sql.contacts_by_email(db, CAMPAIGN) == {"a@example.com": {"n": 1}, "b@example.com": {}}


def test_a_batch_holding_a_known_email_writes_nothing(db) -> None:
    contact_sql.create_contact_table(db, CAMPAIGN)
    contact_sql.copy_new_contacts(db, CAMPAIGN, _rows(("b@example.com", '{"n": 1}')))

    copied = contact_sql.copy_new_contacts(
        db, CAMPAIGN, _rows(("a@example.com", "{}"), ("b@example.com", '{"n": 2}'), ("c@example.com", "{}"))
    )

    assert not copied
    assert contact_sql.contacts_by_email(db, CAMPAIGN) == {"b@example.com": {"n": 1}}
    # The connection is usable at once: the refused batch then merges through staging.
    contact_sql.create_staging(db)
    contact_sql.copy_into_staging(db, _rows(("a@example.com", "{}"), ("b@example.com", '{"n": 2}')))
    assert contact_sql.upsert_from_staging(db, CAMPAIGN) == (1, 1)
    assert contact_sql.contacts_by_email(db, CAMPAIGN) == {"a@example.com": {}, "b@example.com": {"n": 2}}


def test_merging_an_unchanged_record_writes_nothing(db) -> None:
    contact_sql.create_contact_table(db, CAMPAIGN)
    contact_sql.copy_new_contacts(db, CAMPAIGN, _rows(("a@example.com", '{"tags": ["x"], "n": 1}')))
    contact_sql.create_staging(db)

    contact_sql.copy_into_staging(db, _rows(("a@example.com", '{"tags": ["x"], "n": 1}')))

    assert contact_sql.upsert_from_staging(db, CAMPAIGN) == (0, 0)


def _indexes(db) -> list[str]:
    rows = db.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname",
        (contact_sql.contact_table_name(CAMPAIGN),),
    )
    return [row[0].split(" USING ", 1)[1] for row in rows]


def test_contacts_get_their_primary_key_with_the_send_indexes_once(db) -> None:
    contact_sql.create_contact_table(db, CAMPAIGN)
    assert _indexes(db) == ["btree (email)"]  # the import maintains only the upsert key

    contact_sql.create_send_indexes(db, CAMPAIGN)
    contact_sql.create_send_indexes(db, CAMPAIGN)

    assert sorted(_indexes(db)) == ["btree (email)", "btree (id)"]
    primary = db.execute(
        "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
        (contact_sql.contact_table_name(CAMPAIGN),),
    ).fetchone()
    assert primary == (1,)
