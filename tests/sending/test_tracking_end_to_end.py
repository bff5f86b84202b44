"""From a sent message to events and blacklist: the pixel, a link and the unsubscribe, fetched
from the HTML the fake provider received, against the real tracking app and PostgreSQL."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

from psycopg import sql
from starlette.testclient import TestClient

from campaign_pipelines.rendering import Tracking
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.contacts import contact_table
from tests.sending.fixtures import BREVO
from tracking_app.app import create_app
from tracking_app.settings import Settings

SECRET = b"end-to-end-secret"
BASE = "https://t.example.com"


class _Urls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"])
        if tag == "img" and values.get("src"):
            self.images.append(values["src"])


def _path(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE
    return parts.path


def test_a_sent_message_is_tracked_and_its_unsubscribe_holds_for_the_next_campaign(
    db, database_url, make_campaign, run_line, fakes
) -> None:
    tracking = Tracking(base_url=BASE, secret=SECRET)
    first = make_campaign(3, [BREVO])
    run_line(first.line_ids[0], tracking=tracking)
    message = next(m for m in fakes.messages() if m.to == "user1@example.com")
    urls = _Urls()
    urls.feed(message.html)
    [pixel] = urls.images
    click, unsubscribe = [href for href in urls.hrefs if href.startswith(BASE)]
    assert message.headers["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    with TestClient(create_app(Settings(database_url=database_url, secret=SECRET)), follow_redirects=False) as app:
        assert app.get(_path(pixel)).status_code == 200
        redirect = app.get(_path(click))
        assert (redirect.status_code, redirect.headers["location"]) == (302, "https://shop.example.com/bf")
        forged = app.get(_path(click).replace("/c/", "/c/A"))
        assert forged.status_code == 404
        assert app.post(_path(unsubscribe), data={"List-Unsubscribe": "One-Click"}).status_code == 200

    contact_id = db.execute(
        sql.SQL("SELECT id FROM {} WHERE email = 'user1@example.com'").format(contact_table(first.campaign_id))
    ).fetchone()[0]
    events = db.execute("SELECT campaign_id, contact_id, kind FROM tracking_events ORDER BY kind").fetchall()
    assert events == [
        (first.campaign_id, contact_id, 1),
        (first.campaign_id, contact_id, 2),
        (first.campaign_id, contact_id, 3),
    ]
    assert db.execute("SELECT source FROM blacklist WHERE email = 'user1@example.com'").fetchone() == ("unsubscribe",)

    # The next campaign to the same people skips the unsubscribed contact at send time.
    fakes.reset()
    second = make_campaign(3, [{**BREVO, "server": "Brevo - Compte Principal"}])
    outcome = run_line(second.line_ids[0], tracking=tracking)
    assert (outcome.sent, outcome.suppressed) == (2, 1)
    assert "user1@example.com" not in {m.to for m in fakes.messages()}
    assert send_sql.status_counts(db, second.campaign_id) == {ContactStatus.SENT: 2, ContactStatus.SUPPRESSED: 1}
