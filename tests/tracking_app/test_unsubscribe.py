"""One-click unsubscribe: the GET page unsubscribes nobody; the RFC 8058 POST blacklists at once."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql
from starlette.testclient import TestClient

from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.contacts import outcome_table
from campaign_pipelines.tracking.tokens import make_token
from tests.tracking_app.conftest import Campaign, add_campaign, events
from tracking_app.unsubscribe import language

ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


def blacklist(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    return conn.execute("SELECT email, reason, source FROM blacklist ORDER BY email").fetchall()


@pytest.mark.parametrize(
    ("accept_language", "lang", "words"),
    [
        ("fr-FR,fr;q=0.9,en;q=0.8", "fr", "Confirmer la désinscription"),
        ("en-GB,en;q=0.9,fr;q=0.5", "en", "Confirm unsubscribe"),
        ("de-DE,de;q=0.9,en;q=0.7,fr;q=0.3", "en", "Confirm unsubscribe"),
        ("fr;q=0.4,en;q=0.6", "en", "Confirm unsubscribe"),
        (None, "fr", "Confirmer la désinscription"),
    ],
)
def test_the_page_asks_for_confirmation_in_the_readers_language_and_unsubscribes_nobody(
    client: TestClient, campaign: Campaign, db, accept_language: str | None, lang: str, words: str
) -> None:
    headers = {"Accept-Language": accept_language} if accept_language else {}

    response = client.get(f"/u/{campaign.token()}", headers=headers)

    assert response.status_code == 200
    assert response.headers["content-language"] == lang
    assert response.headers["cache-control"] == "no-store"
    assert words in response.text
    assert '<form method="post">' in response.text
    assert 'name="List-Unsubscribe" value="One-Click"' in response.text
    assert blacklist(db) == []
    assert events(db) == []


def test_rfc_8058_one_click_post_blacklists_the_contact_for_every_campaign(
    client: TestClient, campaign: Campaign, db
) -> None:
    response = client.post(f"/u/{campaign.token(3)}", content=ONE_CLICK_BODY, headers=ONE_CLICK)

    assert response.status_code == 200
    assert "Désinscription confirmée" in response.text
    assert blacklist(db) == [("user3@example.com", f"unsubscribed from campaign {campaign.id}", "unsubscribe")]
    [event] = events(db)  # written with the blacklist entry, not buffered
    assert (event["campaign_id"], event["contact_id"], event["kind"]) == (campaign.id, campaign.contact_ids[3], 3)


def test_unsubscribing_again_changes_nothing(client: TestClient, campaign: Campaign, db) -> None:
    for _ in range(3):
        response = client.post(f"/u/{campaign.token()}", content=ONE_CLICK_BODY, headers=ONE_CLICK)
        assert response.status_code == 200
    # The page's button posts the same thing, here in English.
    assert "You are unsubscribed" in client.post(f"/u/{campaign.token()}", headers={"Accept-Language": "en"}).text

    assert len(blacklist(db)) == 1
    assert len(events(db)) == 1


def test_the_next_claim_of_any_campaign_suppresses_the_unsubscribed_contact(
    client: TestClient, campaign: Campaign, db
) -> None:
    # A later campaign to the same addresses, not sent yet.
    later = add_campaign(db, 3)
    db.execute(_reset_to_pending(later.id))

    assert client.post(f"/u/{campaign.token(1)}", content=ONE_CLICK_BODY, headers=ONE_CLICK).status_code == 200

    (line,) = line_sql.lines_of(db, later.id)
    assert line_sql.claim_line(db, line.id, "run", stale_after_s=120)
    claimed = {
        contact.email: contact.send_status for contact in send_sql.claim(db, later.id, line.id, "run", 10).contacts
    }
    assert claimed["user1@example.com"] == ContactStatus.SUPPRESSED
    assert [email for email, status in claimed.items() if status != ContactStatus.SUPPRESSED] == [
        "user0@example.com",
        "user2@example.com",
    ]


def _reset_to_pending(campaign_id: int) -> sql.Composed:
    return sql.SQL("DELETE FROM {}").format(outcome_table(campaign_id))


def test_an_address_already_blacklisted_keeps_its_entry(client: TestClient, campaign: Campaign, db) -> None:
    db.execute("INSERT INTO blacklist (email, reason, source) VALUES ('user0@example.com', 'complaint', 'complaint')")

    assert client.post(f"/u/{campaign.token()}", content=ONE_CLICK_BODY, headers=ONE_CLICK).status_code == 200

    assert blacklist(db) == [("user0@example.com", "complaint", "complaint")]
    assert len(events(db)) == 1  # the unsubscribe from this campaign is still recorded


def test_forged_tokens_unsubscribe_nobody(client: TestClient, campaign: Campaign, db) -> None:
    forged = make_token(b"guessed", campaign.id, campaign.contact_ids[0])
    token = campaign.token()
    mutated = token[:5] + ("B" if token[5] != "B" else "C") + token[6:]
    for bad in [forged, mutated, "A" * 35, "x"]:
        assert client.post(f"/u/{bad}", content=ONE_CLICK_BODY, headers=ONE_CLICK).status_code == 404, bad
        assert client.get(f"/u/{bad}").status_code == 404, bad

    assert blacklist(db) == []
    assert events(db) == []


def test_a_genuine_token_for_an_unknown_contact_or_campaign_is_404(client: TestClient, campaign: Campaign, db) -> None:
    unknown_contact = make_token(b"tracking-test-secret", campaign.id, 999_999)
    unknown_campaign = make_token(b"tracking-test-secret", campaign.id + 100, 1)

    for token in (unknown_contact, unknown_campaign):
        assert client.post(f"/u/{token}", content=ONE_CLICK_BODY, headers=ONE_CLICK).status_code == 404

    assert blacklist(db) == []
    assert events(db) == []


def test_language_reads_quality_values() -> None:
    assert language("en;q=0.2, fr;q=0.8") == "fr"
    assert language("fr;q=0, en;q=0.1") == "en"
    assert language("fr-CA") == "fr"
    assert language("es, it") == "fr"
    assert language("en;q=abc, fr;q=0.1") == "fr"
