"""store.outcomes.id_ranges: the slices a report reads a campaign in, bounded in contacts and in events."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from campaign_pipelines.store import outcomes
from campaign_pipelines.store.duck import duckdb_over
from campaign_pipelines.store.tracking import OPEN, copy_events
from tests.sending.fixtures import BREVO


def _opens(db: psycopg.Connection, campaign_id: int, contacts: list[int]) -> None:
    at = datetime.now(UTC).isoformat()
    copy_events(db, "".join(f"{campaign_id}\t{c}\t{OPEN}\t\\N\t0\t{at}\t\\N\t\\N\n" for c in contacts).encode())


def test_slices_cover_every_contact_and_event_in_slices_of_at_most_size_ids(db, database_url, make_campaign, tmp_path):
    setup = make_campaign(10, [BREVO], launch=False)
    _opens(db, setup.campaign_id, [12])  # an event naming a contact past the table's last (a reimport)

    with duckdb_over(database_url, tmp_path) as duck:
        assert outcomes.id_ranges(duck, setup.campaign_id, size=4) == [(1, 5), (5, 9), (9, 13)]
        assert outcomes.id_ranges(duck, setup.campaign_id, size=100) == [(1, 13)]


def test_a_slice_holding_more_events_than_allowed_is_halved_down_to_one_contact(
    db, database_url, make_campaign, tmp_path
):
    setup = make_campaign(8, [BREVO], launch=False)
    _opens(db, setup.campaign_id, [1, 1, 1, 1, 1, 2, 3, 7])  # contact 1 opened five times

    with duckdb_over(database_url, tmp_path) as duck:
        slices = outcomes.id_ranges(duck, setup.campaign_id, size=8, events=2)

    assert slices == [(1, 2), (2, 3), (3, 5), (5, 9)]


def test_a_campaign_without_contacts_or_events_has_no_slice(db, database_url, make_campaign, tmp_path):
    setup = make_campaign(0, [BREVO], launch=False)

    with duckdb_over(database_url, tmp_path) as duck:
        assert outcomes.id_ranges(duck, setup.campaign_id) == []
