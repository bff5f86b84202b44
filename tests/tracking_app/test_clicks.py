"""Tracked links: 302 to the campaign's stored link, the click recorded; never an open redirect."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from campaign_pipelines.store import tracking as tracking_sql
from campaign_pipelines.tracking.tokens import make_token
from tests.tracking_app.conftest import LINKS, SECRET, Campaign, add_campaign, events, stop, wait_for_events


def test_a_click_redirects_to_the_stored_link_and_is_recorded(client: TestClient, campaign: Campaign, db) -> None:
    response = client.get(f"/c/{campaign.token(2)}/1", headers={"User-Agent": "Mozilla/5.0"})

    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.example.com/vip"
    assert "no-store" in response.headers["cache-control"]
    [event] = wait_for_events(db, 1)
    assert (event["campaign_id"], event["contact_id"]) == (campaign.id, campaign.contact_ids[2])
    assert (event["kind"], event["link_idx"], event["flag"]) == (2, 1, 0)


def test_links_keep_their_query_strings_as_a_browser_reads_the_href(client: TestClient, campaign: Campaign) -> None:
    assert client.get(f"/c/{campaign.token()}/0").headers["location"] == LINKS[0]
    # The template's href said `&amp;`: the browser, and so the redirect, goes to `&`.
    assert client.get(f"/c/{campaign.token()}/2").headers["location"] == "https://x.example/a?b=1&c=2"


def test_each_campaign_redirects_only_to_its_own_links(client: TestClient, campaign: Campaign, db) -> None:
    other = add_campaign(db, 1, links=["https://other.example/only"])

    assert client.get(f"/c/{other.token()}/0").headers["location"] == "https://other.example/only"
    assert client.get(f"/c/{other.token()}/1").status_code == 404
    assert client.get(f"/c/{campaign.token()}/0").headers["location"] == LINKS[0]


@pytest.mark.parametrize(
    "tail",
    [
        "3",  # no such link
        "999999999",
        "99999999999999999999",
        "9" * 5000,  # more digits than int() takes
        "-1",
        "01",
        "1.0",
        "+1",
        "https://evil.example/",
        "https:%2F%2Fevil.example",
        "//evil.example",
        "0/https://evil.example",
        "0/",
        "",
        "0?url=https://evil.example",  # a query string is not part of the link: 302 to link 0, never to evil
    ],
)
def test_unknown_links_and_redirect_attempts_are_404_and_never_recorded(
    client: TestClient, campaign: Campaign, db, tail: str
) -> None:
    response = client.get(f"/c/{campaign.token()}/{tail}")

    if tail.startswith("0?"):
        assert response.status_code == 302 and response.headers["location"] == LINKS[0]
        return
    assert response.status_code == 404
    assert "location" not in response.headers
    stop(client)
    assert events(db) == []


def test_absolute_and_scheme_relative_paths_are_404(client: TestClient, campaign: Campaign) -> None:
    for path in ["//evil.example/", "//evil.example", f"//c/{campaign.token()}/0", "/c//evil.example"]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert "location" not in response.headers


def test_a_forged_token_cannot_use_a_real_link(client: TestClient, campaign: Campaign, db) -> None:
    forged = make_token(b"not-the-secret", campaign.id, campaign.contact_ids[0])

    assert client.get(f"/c/{forged}/0").status_code == 404
    stop(client)
    assert events(db) == []


def test_a_link_table_without_http_urls_redirects_nowhere(client: TestClient, db) -> None:
    # Sending stores only http(s) hrefs; anything else in the table is never a redirect target.
    other = add_campaign(db, 1, links=["javascript:alert(1)", "https://ok.example/"])

    assert client.get(f"/c/{other.token()}/0").status_code == 404
    assert client.get(f"/c/{other.token()}/1").headers["location"] == "https://ok.example/"


def test_a_link_table_is_read_once_per_campaign(client: TestClient, campaign: Campaign, db) -> None:
    assert client.get(f"/c/{campaign.token()}/0").status_code == 302
    db.execute("DELETE FROM campaign_links WHERE campaign_id = %s", (campaign.id,))

    # Links never change once stored: the cached table still answers.
    assert client.get(f"/c/{campaign.token(1)}/1").headers["location"] == LINKS[1]


def test_a_campaign_whose_links_are_not_stored_yet_is_read_again(client: TestClient, db) -> None:
    other = add_campaign(db, 1, links=[])
    assert client.get(f"/c/{other.token()}/0").status_code == 404

    tracking_sql.save_links(db, other.id, ["https://late.example/"])

    assert client.get(f"/c/{other.token()}/0").headers["location"] == "https://late.example/"


def test_the_link_cache_is_bounded(make_client, db) -> None:
    client = make_client(link_cache_campaigns=2)
    made = [add_campaign(db, 1, links=[f"https://c{i}.example/"]) for i in range(4)]
    for each in made:
        assert client.get(f"/c/{each.token()}/0").status_code == 302
    db.execute("DELETE FROM campaign_links")

    # Only the last two campaigns are still cached; the first ones are read again (and now have no links).
    assert client.get(f"/c/{made[3].token()}/0").status_code == 302
    assert client.get(f"/c/{made[2].token()}/0").status_code == 302
    assert client.get(f"/c/{made[0].token()}/0").status_code == 404


def test_head_on_a_link_redirects_and_is_flagged_prefetch(client: TestClient, campaign: Campaign, db) -> None:
    response = client.head(f"/c/{campaign.token()}/0")

    assert response.status_code == 302
    [event] = wait_for_events(db, 1)
    assert (event["kind"], event["flag"]) == (2, 3)


def test_secret_mismatch_is_not_a_server_error(make_client, campaign: Campaign) -> None:
    client = make_client(secret=SECRET + b"-rotated")

    assert client.get(f"/c/{campaign.token()}/0").status_code == 404
