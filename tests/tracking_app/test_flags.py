"""Flags: Apple MPP proxies, security scanners and prefetches are flagged, never dropped."""

from __future__ import annotations

import ipaddress

import pytest
from psycopg import sql
from starlette.testclient import TestClient

from campaign_pipelines.store.contacts import drop_contact_table, outcome_table
from tests.tracking_app.conftest import PROXY, Campaign, add_campaign, wait_for_events
from tracking_app.flags import APPLE_MPP, HUMAN, PREFETCH, SCANNER, client_ip, flag_of

TRUSTED = (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("2001:db8::/32"))
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)"


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        # An untrusted peer's X-Forwarded-For is the client's own claim.
        ("203.0.113.9", "17.1.2.3", "203.0.113.9"),
        ("10.0.0.5", "17.1.2.3", "17.1.2.3"),
        # Hops are read from the right: what the client wrote on the left is ignored.
        ("10.0.0.5", "17.1.2.3, 198.51.100.4", "198.51.100.4"),
        ("10.0.0.5", "198.51.100.4, 10.0.0.6", "198.51.100.4"),
        ("10.0.0.5", "garbage, 198.51.100.4", "198.51.100.4"),
        ("10.0.0.5", "198.51.100.4, garbage", "10.0.0.5"),
        ("10.0.0.5", "10.0.0.6", "10.0.0.6"),
        ("2001:db8::1", "2620:149::5", "2620:149::5"),
        ("testclient", "17.1.2.3", None),
        (None, None, None),
    ],
)
def test_the_client_address_trusts_only_configured_proxies(
    peer: str | None, forwarded: str | None, expected: str | None
) -> None:
    address = client_ip(peer, forwarded, TRUSTED)
    assert (str(address) if address else None) == expected


@pytest.mark.parametrize(
    ("ip", "agent", "referrer", "head", "flag"),
    [
        ("17.58.100.1", "Mozilla/5.0", None, False, APPLE_MPP),
        ("17.58.100.1", None, None, True, APPLE_MPP),
        ("40.92.18.3", BROWSER, None, False, SCANNER),
        ("52.100.1.1", BROWSER, None, False, SCANNER),
        ("52.112.0.1", BROWSER, None, False, HUMAN),
        ("203.0.113.1", "Mozilla/5.0 Proofpoint URL Defense", None, False, SCANNER),
        ("203.0.113.1", "Mimecast-Scanner/1.0", None, False, SCANNER),
        ("203.0.113.1", "Barracuda Sentinel (EE)", None, False, SCANNER),
        ("203.0.113.1", BROWSER, "https://eur01.safelinks.protection.outlook.com/?url=x", False, SCANNER),
        ("203.0.113.1", BROWSER, None, True, PREFETCH),
        ("203.0.113.1", BROWSER, "https://mail.example.com/", False, HUMAN),
        (None, None, None, False, HUMAN),
    ],
)
def test_flags(ip: str | None, agent: str | None, referrer: str | None, head: bool, flag: int) -> None:
    assert flag_of(ipaddress.ip_address(ip) if ip else None, agent, referrer, head) == flag


def test_head_on_the_pixel_is_a_prefetch(client: TestClient, campaign: Campaign, db) -> None:
    response = client.head(f"/o/{campaign.token()}.gif")

    assert response.status_code == 200 and response.content == b""
    [event] = wait_for_events(db, 1)
    assert (event["kind"], event["flag"]) == (1, PREFETCH)


def test_an_apple_proxy_behind_the_load_balancer_is_mpp(make_client, campaign: Campaign, db) -> None:
    client = make_client(peer=PROXY)

    client.get(f"/o/{campaign.token()}.gif", headers={"X-Forwarded-For": "17.58.100.7", "User-Agent": "Mozilla/5.0"})

    [event] = wait_for_events(db, 1)
    assert (event["ip"], event["flag"]) == ("17.58.100.7", APPLE_MPP)


def test_an_apple_address_claimed_by_an_untrusted_client_is_not_believed(
    client: TestClient, campaign: Campaign, db
) -> None:
    client.get(f"/o/{campaign.token()}.gif", headers={"X-Forwarded-For": "17.58.100.7", "User-Agent": BROWSER})

    [event] = wait_for_events(db, 1)
    assert (event["ip"], event["flag"]) == ("198.51.100.20", HUMAN)


def test_a_scanner_user_agent_is_a_scanner(client: TestClient, campaign: Campaign, db) -> None:
    client.get(f"/c/{campaign.token()}/0", headers={"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"})
    client.get(f"/o/{campaign.token(1)}.gif", headers={"Referer": "https://nam02.safelinks.protection.outlook.com/"})

    assert [event["flag"] for event in wait_for_events(db, 2)] == [SCANNER, SCANNER]


def test_microsoft_networks_are_scanners(make_client, campaign: Campaign, db) -> None:
    make_client(peer="40.92.5.6").get(f"/c/{campaign.token()}/1", headers={"User-Agent": BROWSER})

    [event] = wait_for_events(db, 1)
    assert (event["ip"], event["flag"]) == ("40.92.5.6", SCANNER)


def test_an_event_within_seconds_of_the_send_is_a_prefetch(make_client, db) -> None:
    just_sent = add_campaign(db, 3, sent_ago_s=1)
    long_ago = add_campaign(db, 1, sent_ago_s=3600)
    # Still sending, but this contact went out an hour ago.
    db.execute(
        sql.SQL("UPDATE {} SET at = now() - interval '1 hour' WHERE contact_id = %s").format(
            outcome_table(just_sent.id)
        ),
        [just_sent.contact_ids[2]],
    )
    client = make_client(prefetch_s=10)

    client.get(f"/o/{just_sent.token()}.gif", headers={"User-Agent": BROWSER})
    client.get(f"/c/{just_sent.token(1)}/0", headers={"User-Agent": BROWSER})
    client.get(f"/o/{just_sent.token(2)}.gif", headers={"User-Agent": BROWSER})
    client.get(f"/o/{long_ago.token()}.gif", headers={"User-Agent": BROWSER})

    flags = {(e["campaign_id"], e["contact_id"], e["kind"]): e["flag"] for e in wait_for_events(db, 4)}
    assert flags == {
        (just_sent.id, just_sent.contact_ids[0], 1): PREFETCH,
        (just_sent.id, just_sent.contact_ids[1], 2): PREFETCH,
        (just_sent.id, just_sent.contact_ids[2], 1): HUMAN,
        (long_ago.id, long_ago.contact_ids[0], 1): HUMAN,
    }


def test_a_contact_never_sent_or_a_deleted_campaign_is_not_flagged_by_send_time(make_client, db) -> None:
    sending = add_campaign(db, 1, sent_ago_s=1)
    db.execute(sql.SQL("DELETE FROM {}").format(outcome_table(sending.id)))
    gone = add_campaign(db, 1, sent_ago_s=1)
    drop_contact_table(db, gone.id)
    client = make_client()

    client.get(f"/o/{sending.token()}.gif", headers={"User-Agent": BROWSER})
    client.get(f"/o/{gone.token()}.gif", headers={"User-Agent": BROWSER})

    assert [event["flag"] for event in wait_for_events(db, 2)] == [HUMAN, HUMAN]


def test_user_agents_are_cut_at_512_characters(client: TestClient, campaign: Campaign, db) -> None:
    client.get(f"/o/{campaign.token()}.gif", headers={"User-Agent": "M" * 2000})

    [event] = wait_for_events(db, 1)
    assert event["user_agent"] == "M" * 512
