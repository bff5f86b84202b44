"""The open pixel: GIF bytes and headers, the open recorded; bad tokens answered 404 and never recorded."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from campaign_pipelines.tracking.tokens import TOKEN_LENGTH, make_token
from tests.tracking_app.conftest import Campaign, events, stop, wait_for_events
from tracking_app.pixel import GIF


def test_the_pixel_is_a_transparent_gif_never_cached(client: TestClient, campaign: Campaign, db) -> None:
    response = client.get(f"/o/{campaign.token(1)}.gif", headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0)"})

    assert response.status_code == 200
    assert response.content == GIF and len(GIF) == 43 and GIF.startswith(b"GIF89a")
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["cache-control"] == "no-store, no-cache, must-revalidate, private"
    [event] = wait_for_events(db, 1)
    assert event["campaign_id"] == campaign.id and event["contact_id"] == campaign.contact_ids[1]
    assert (event["kind"], event["link_idx"], event["flag"]) == (1, None, 0)
    assert event["ip"] == "198.51.100.20"
    assert event["user_agent"] == "Mozilla/5.0 (Windows NT 10.0)"


def test_buffered_opens_are_all_written_when_the_app_stops(make_client, campaign: Campaign, db) -> None:
    client = make_client(flush_interval_s=60, flush_size=10_000)  # nothing is written before the stop
    for _ in range(50):
        assert client.get(f"/o/{campaign.token()}.gif").status_code == 200
    assert events(db) == []

    stop(client)

    assert len(events(db)) == 50


def test_a_full_buffer_is_written_without_waiting_for_the_interval(make_client, campaign, db) -> None:
    client = make_client(flush_interval_s=60, flush_size=20)
    for _ in range(20):
        client.get(f"/o/{campaign.token()}.gif")

    assert len(wait_for_events(db, 20)) == 20


def _mutations(token: str) -> list[str]:
    """Every single-character change, plus base64's other spellings of the same bytes."""
    changed = [
        token[:i] + other + token[i + 1 :] for i in range(len(token)) for other in "AQgw_-9z" if other != token[i]
    ]
    spellings = [token.replace("-", "+").replace("_", "/"), token + "=", token[:-1], token + "A", token.lower()]
    return [bad for bad in changed + spellings if bad != token]


def test_forged_and_mutated_tokens_are_404_and_never_recorded(client: TestClient, campaign: Campaign, db) -> None:
    token = campaign.token()
    forged = [make_token(b"guessed-secret", campaign.id, campaign.contact_ids[0]), "A" * TOKEN_LENGTH, "x", ""]
    for bad in [*_mutations(token), *forged]:
        assert client.get(f"/o/{bad}.gif").status_code == 404, bad
        assert client.head(f"/o/{bad}.gif").status_code == 404, bad
    assert client.get(f"/o/{token}.png").status_code == 404
    assert client.get(f"/o/{token}").status_code == 404

    stop(client)

    assert events(db) == []


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_the_pixel_only_answers_get_and_head(client: TestClient, campaign: Campaign, method: str) -> None:
    assert client.request(method, f"/o/{campaign.token()}.gif").status_code == 405
