"""campaign_pipelines.blacklist and its SQL: delivery events matched to sends, their blacklist effects,
the operator's add/remove/list, and the streamed export, on the real test database."""

from __future__ import annotations

import io
import itertools
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest

from campaign_pipelines import blacklist
from campaign_pipelines.blacklist import (
    COMPLAINT,
    DELIVERED,
    HARD_BOUNCE,
    SOFT_BOUNCE,
    UNSUBSCRIBE,
    DeliveryEvent,
)
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.store import blacklist as blacklist_sql
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.contacts import contact_table, create_contact_table, create_send_indexes

CAMPAIGN = 12
WHEN = datetime(2025, 11, 28, 8, 30, tzinfo=UTC)
_EVENT_NUMBERS = itertools.count(1)


@pytest.fixture
def contacts(db: psycopg.Connection) -> dict[str, int]:
    """Campaign 12's contact table: email → contact id."""
    create_contact_table(db, CAMPAIGN)
    with db.cursor() as cur:
        cur.executemany(
            psycopg.sql.SQL("INSERT INTO {} (email, attributes) VALUES (%s, '{{}}')").format(contact_table(CAMPAIGN)),
            [("ana@example.com",), ("bob@example.com",), ("eve@example.com",)],
        )
    create_send_indexes(db, CAMPAIGN)  # as its launch would
    return dict(db.execute(psycopg.sql.SQL("SELECT email, id FROM {}").format(contact_table(CAMPAIGN))).fetchall())


def event(
    kind: str, email: str, send_id: str | None = None, detail: str | None = None, *, event_id: str | None = None
) -> DeliveryEvent:
    """Another event each call (ids in call order, the order one call stores them), or a copy of `event_id`'s."""
    return DeliveryEvent(
        provider="brevo",
        event_id=event_id or f"event-{next(_EVENT_NUMBERS):06d}",
        event=kind,
        email=email,
        send_id=send_id,
        detail=detail,
        occurred_at=WHEN,
    )


def stored(db: psycopg.Connection) -> list[tuple]:
    return db.execute(
        "SELECT provider, campaign_id, contact_id, email, event, detail, occurred_at FROM delivery_events ORDER BY id"
    ).fetchall()


def entries(db: psycopg.Connection) -> dict[str, tuple[str, str]]:
    return {
        email: (source, reason) for email, source, reason in db.execute("SELECT email, source, reason FROM blacklist")
    }


def test_soft_bounce_limit_comes_from_the_environment() -> None:
    assert blacklist.soft_bounce_limit({}) == 3
    assert blacklist.soft_bounce_limit({"SOFT_BOUNCE_LIMIT": " 5 "}) == 5
    for bad in ("0", "-1", "two", "2.5", "²"):
        with pytest.raises(ValidationError, match="SOFT_BOUNCE_LIMIT"):
            blacklist.soft_bounce_limit({"SOFT_BOUNCE_LIMIT": bad})


# --- delivery events -----------------------------------------------------------------------


def test_events_are_matched_to_our_sends_by_send_id(db: psycopg.Connection, contacts: dict[str, int]) -> None:
    ana, bob = contacts["ana@example.com"], contacts["bob@example.com"]
    recorded = blacklist.record_delivery_events(
        db,
        [
            event(DELIVERED, "Ana@Example.com", f"{CAMPAIGN}-{ana}"),
            # Our format, but that contact has another address (a reconfigured campaign): not that send.
            event(DELIVERED, "carl@example.com", f"{CAMPAIGN}-{bob}"),
            # A campaign whose contact table does not exist.
            event(DELIVERED, "bob@example.com", f"999-{bob}"),
            event(DELIVERED, "bob@example.com", None),
            event(DELIVERED, "bob@example.com", f"{CAMPAIGN}-{bob}"),
        ],
        soft_bounce_limit=3,
    )

    assert (recorded.events, recorded.matched, recorded.blacklisted) == (5, 2, [])
    assert [(row[1], row[2], row[3]) for row in stored(db)] == [
        (CAMPAIGN, ana, "ana@example.com"),
        (None, None, "carl@example.com"),
        (None, None, "bob@example.com"),
        (None, None, "bob@example.com"),
        (CAMPAIGN, bob, "bob@example.com"),
    ]
    assert stored(db)[0][6] == WHEN


def test_hard_bounces_complaints_and_unsubscribes_blacklist_at_once(db: psycopg.Connection) -> None:
    blacklist.add(db, "eve@example.com", "asked by phone")
    recorded = blacklist.record_delivery_events(
        db,
        [
            event(HARD_BOUNCE, "ana@example.com", detail="550 5.1.1 user unknown"),
            event(COMPLAINT, "bob@example.com"),
            event(UNSUBSCRIBE, "carl@example.com"),
            # Already blacklisted: the first entry stays as it was.
            event(HARD_BOUNCE, "eve@example.com", detail="550 mailbox gone"),
            event(DELIVERED, "dan@example.com"),
        ],
        soft_bounce_limit=3,
    )

    assert recorded.blacklisted == [
        ("ana@example.com", "hard_bounce"),
        ("bob@example.com", "complaint"),
        ("carl@example.com", "unsubscribe"),
    ]
    assert entries(db) == {
        "ana@example.com": ("hard_bounce", "brevo: 550 5.1.1 user unknown"),
        "bob@example.com": ("complaint", "brevo: spam complaint"),
        "carl@example.com": ("unsubscribe", "brevo: unsubscribed"),
        "eve@example.com": ("manual", "asked by phone"),
    }


def test_soft_bounces_blacklist_at_the_limit(db: psycopg.Connection) -> None:
    for number in (1, 2):
        recorded = blacklist.record_delivery_events(
            db, [event(SOFT_BOUNCE, "ana@example.com", detail=f"452 mailbox full ({number})")], soft_bounce_limit=3
        )
        assert recorded.blacklisted == []
        assert entries(db) == {}
    # Another address's soft bounces do not count for this one.
    blacklist.record_delivery_events(db, [event(SOFT_BOUNCE, "bob@example.com")], soft_bounce_limit=3)

    recorded = blacklist.record_delivery_events(
        db, [event(SOFT_BOUNCE, "ana@example.com", detail="452 mailbox full (3)")], soft_bounce_limit=3
    )

    assert recorded.blacklisted == [("ana@example.com", "soft_bounce")]
    assert entries(db) == {"ana@example.com": ("soft_bounce", "brevo: 3 soft bounces, the last: 452 mailbox full (3)")}


def test_soft_bounces_of_one_request_count_together(db: psycopg.Connection) -> None:
    recorded = blacklist.record_delivery_events(
        db, [event(SOFT_BOUNCE, "ana@example.com", detail=str(n)) for n in range(2)], soft_bounce_limit=2
    )
    assert recorded.blacklisted == [("ana@example.com", "soft_bounce")]
    assert entries(db)["ana@example.com"] == ("soft_bounce", "brevo: 2 soft bounces, the last: 1")


def test_a_hard_bounce_wins_over_soft_bounces_in_the_same_request(db: psycopg.Connection) -> None:
    blacklist.record_delivery_events(
        db,
        [event(SOFT_BOUNCE, "ana@example.com"), event(HARD_BOUNCE, "ana@example.com", detail="gone")],
        soft_bounce_limit=1,
    )
    assert entries(db) == {"ana@example.com": ("hard_bounce", "brevo: gone")}


def test_concurrent_soft_bounces_of_one_address_reach_the_limit(db: psycopg.Connection, database_url: str) -> None:
    """Two requests each bringing the last soft bounces: the second one waits and sees the first's."""
    blacklist.record_delivery_events(db, [event(SOFT_BOUNCE, "ana@example.com")], soft_bounce_limit=3)
    outcome: list[list[tuple[str, str]]] = []

    def second_request() -> None:
        with connect(database_url) as other:
            found = blacklist.record_delivery_events(
                other, [event(SOFT_BOUNCE, "ana@example.com")], soft_bounce_limit=3
            )
            outcome.append(found.blacklisted)

    with connect(database_url) as first, first.transaction():
        blacklist.record_delivery_events(first, [event(SOFT_BOUNCE, "ana@example.com")], soft_bounce_limit=3)
        thread = threading.Thread(target=second_request)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the second request must wait for the first one's count"
    thread.join(timeout=10)

    assert outcome == [[("ana@example.com", "soft_bounce")]]
    assert entries(db)["ana@example.com"][0] == "soft_bounce"


def test_an_event_already_stored_has_no_effect(db: psycopg.Connection) -> None:
    bounce = event(HARD_BOUNCE, "ana@example.com", detail="550 gone")
    assert blacklist.record_delivery_events(db, [bounce], soft_bounce_limit=3).blacklisted == [
        ("ana@example.com", "hard_bounce")
    ]
    blacklist.remove(db, "ana@example.com")

    # The provider retries it after the operator took the address off: it stays off.
    recorded = blacklist.record_delivery_events(db, [bounce], soft_bounce_limit=3)

    assert (recorded.events, recorded.duplicates, recorded.blacklisted) == (0, 1, [])
    assert entries(db) == {}
    assert len(stored(db)) == 1


def test_copies_of_one_soft_bounce_count_once(db: psycopg.Connection) -> None:
    first, second = event(SOFT_BOUNCE, "ana@example.com"), event(SOFT_BOUNCE, "ana@example.com")
    copies = [first, first, second, event(SOFT_BOUNCE, "ana@example.com", event_id=second.event_id)]

    recorded = blacklist.record_delivery_events(db, copies, soft_bounce_limit=3)

    assert (recorded.events, recorded.duplicates, recorded.blacklisted) == (2, 2, [])
    assert len(stored(db)) == 2
    # The third distinct one reaches the limit.
    third = blacklist.record_delivery_events(db, [event(SOFT_BOUNCE, "ana@example.com")], soft_bounce_limit=3)
    assert third.blacklisted == [("ana@example.com", "soft_bounce")]


def test_long_provider_words_are_cut_and_flattened(db: psycopg.Connection) -> None:
    blacklist.record_delivery_events(
        db, [event(HARD_BOUNCE, "ana@example.com", detail="550\n  " + "x" * 5000)], soft_bounce_limit=3
    )
    detail = stored(db)[0][5]
    assert detail.startswith("550 x") and len(detail) == 1000


def test_a_failure_records_nothing(db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(conn: psycopg.Connection, new: object) -> list:
        raise psycopg.errors.QueryCanceled("canceled")

    monkeypatch.setattr(blacklist_sql, "add_many", broken)
    with pytest.raises(psycopg.errors.QueryCanceled):
        blacklist.record_delivery_events(db, [event(HARD_BOUNCE, "ana@example.com")], soft_bounce_limit=3)
    assert stored(db) == []


# --- the operator's commands ---------------------------------------------------------------


def test_add_normalises_and_keeps_an_existing_entry(db: psycopg.Connection) -> None:
    entry, created = blacklist.add(db, "  Ana@Example.COM ", "  asked   by phone ")
    assert created and (entry.email, entry.reason, entry.source) == ("ana@example.com", "asked by phone", "manual")

    blacklist.record_delivery_events(db, [event(COMPLAINT, "bob@example.com")], soft_bounce_limit=3)
    entry, created = blacklist.add(db, "bob@example.com")
    assert not created and entry.source == "complaint"

    entry, created = blacklist.add(db, "carl@example.com", "")
    assert created and entry.reason == blacklist.MANUAL_REASON


def test_add_refuses_what_is_not_an_address(db: psycopg.Connection) -> None:
    with pytest.raises(ValidationError, match="not an email address"):
        blacklist.add(db, "jean.dupont@")
    assert entries(db) == {}


def test_remove(db: psycopg.Connection) -> None:
    blacklist.add(db, "ana@example.com")
    assert blacklist.remove(db, " ANA@example.com").email == "ana@example.com"
    assert entries(db) == {}
    with pytest.raises(NotFoundError, match="ana@example.com is not blacklisted"):
        blacklist.remove(db, "ana@example.com")


def test_entries_newest_first_by_source_and_limit(db: psycopg.Connection) -> None:
    blacklist.add(db, "old@example.com")
    blacklist.record_delivery_events(db, [event(COMPLAINT, "mid@example.com")], soft_bounce_limit=3)
    blacklist.add(db, "new@example.com")

    assert [e.email for e in blacklist.entries(db)] == ["new@example.com", "mid@example.com", "old@example.com"]
    assert [e.email for e in blacklist.entries(db, source="manual", limit=1)] == ["new@example.com"]
    assert [e.email for e in blacklist.entries(db, source="complaint")] == ["mid@example.com"]
    with pytest.raises(ValidationError) as error:
        blacklist.entries(db, source="spam", limit=0)
    assert len(error.value.problems) == 2


def test_export_streams_through_a_server_side_cursor(db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO blacklist (email, reason, source)"
        " SELECT 'user' || lpad(g::text, 5, '0') || '@example.com', 'r', 'manual' FROM generate_series(1, 12000) g"
    )
    with db.transaction():
        rows = blacklist_sql.stream_entries(db)
        first = next(rows)
        # Only the first fetch is in memory; the rest waits on the server.
        cursors = db.execute("SELECT name FROM pg_cursors").fetchall()
        rest = sum(1 for _ in rows)
    assert first[0] == "user00001@example.com"
    assert ("blacklist_export",) in cursors
    assert rest == 11999


def test_export_csv(db: psycopg.Connection) -> None:
    blacklist.add(db, "bob@example.com", 'said "no", twice')
    blacklist.record_delivery_events(
        db, [event(HARD_BOUNCE, "ana@example.com", detail="550 user unknown")], soft_bounce_limit=3
    )
    created = {email: at for email, at in db.execute("SELECT email, created_at FROM blacklist")}
    out = io.StringIO()

    assert blacklist.export_csv(db, out) == 2
    assert out.getvalue().splitlines() == [
        "email,reason,source,created_at",
        f"ana@example.com,brevo: 550 user unknown,hard_bounce,{created['ana@example.com'].astimezone(UTC).isoformat()}",
        f'bob@example.com,"said ""no"", twice",manual,{created["bob@example.com"].astimezone(UTC).isoformat()}',
    ]
