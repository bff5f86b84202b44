"""The operator's tour in a real browser: Debian's chromium on the Dagster UI of a real `make dev`."""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from campaign_pipelines import demo
from campaign_pipelines.store.campaigns import campaign_by_id, list_campaigns
from campaign_pipelines.store.connection import connect
from tests.browser.conftest import CHROMIUM, LOCATION, DevServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: apt-get install chromium chromium-driver (.ci/run does)"
    ),
]

SEND_TIMEOUT_SECONDS = 240
CREATE_CAMPAIGN_CONFIG = f"""\
ops:
  create_draft:
    config:
      name: Browser tour
      subject: "Offres exclusives"
      template: {demo.TEMPLATE}
"""
RECIPIENTS = 12


def _fill_launchpad(page: Page, devserver: DevServer, job: str, config: str) -> None:
    page.goto(f"{devserver.url}/locations/{LOCATION}/jobs/{job}/playground")
    editor = page.locator(".CodeMirror")
    editor.click()
    page.keyboard.press("Control+A")
    # As a paste: typed keys would be auto-indented by the editor.
    page.keyboard.insert_text(config)
    expect(editor).to_contain_text("create_draft")


def test_launchpad_creates_a_draft_campaign(
    page: Page, devserver: DevServer, screenshot: Callable[[Page, str], Path]
) -> None:
    _fill_launchpad(page, devserver, "create_campaign", CREATE_CAMPAIGN_CONFIG)
    expect(page.get_by_text("No errors")).to_be_visible()
    screenshot(page, "1-create_campaign-launchpad")
    page.get_by_role("button", name="Launch Run").click()

    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    with connect(devserver.database_url) as conn:
        (campaign,) = [row for row in list_campaigns(conn) if row.name == "Browser tour"]
    assert campaign.status == "draft"
    # The id is the step's output metadata, in the run's event log...
    expect(page.get_by_role("row", name=f"campaign_id {campaign.id}", exact=True)).to_be_visible()
    screenshot(page, "2-create_campaign-run-succeeded")
    # ...and the run's campaign_id tag.
    page.get_by_role("button", name="View tags and config").click()
    expect(page.get_by_role("dialog")).to_contain_text(f"campaign_id: {campaign.id}")
    screenshot(page, "3-create_campaign-run-tags")


def _eventually(check: Callable[[], object], what: str, timeout: float = SEND_TIMEOUT_SECONDS) -> object:
    """Polls a real state (the database, the CLI) until `check` returns something true."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {timeout:.0f} s")
        time.sleep(0.5)
    return result


def _sent_campaign(devserver: DevServer) -> int:
    """A campaign of RECIPIENTS contacts on the demo's sandbox server and template, created, imported and sent."""
    contacts = [{"email": f"client{n}@example.com", "first_name": f"Client {n}"} for n in range(1, RECIPIENTS + 1)]
    (devserver.contacts_dir / "browser_tour.json").write_text(json.dumps(contacts), encoding="utf-8")
    created = devserver.campaigns(
        "campaign", "create", "--name", "Report tour", "--subject", "Offres", "--template", demo.TEMPLATE
    )
    campaign_id = int(re.search(r"campaign (\d+) created", created).group(1))
    line = f"sender_name=Promo,sender_email=offres@mondomaine.example,server={demo.SERVER}"
    devserver.campaigns("campaign", "configure", str(campaign_id), "--file", "browser_tour.json", "--channel", line)

    def completed() -> bool:
        with connect(devserver.database_url) as conn:
            return campaign_by_id(conn, campaign_id).status == "completed"

    _eventually(completed, f"campaign {campaign_id} imported and sent by the sensors")
    return campaign_id


def _tracking_urls(message: Path, tracking_url: str) -> dict[str, str]:
    """The message's open pixel ('o') and first tracked link ('c'), from its HTML part."""
    html = email.message_from_bytes(message.read_bytes(), policy=email.policy.default).get_body(("html",))
    urls = {}
    for match in re.finditer(rf"{re.escape(tracking_url)}/([oc])/[^\"'\s<>]+", html.get_content()):
        urls.setdefault(match.group(1), match.group(0))
    assert set(urls) == {"o", "c"}, f"{message.name}: {urls}"
    return urls


def _play_recipients(devserver: DevServer, campaign_id: int) -> None:
    """The first recipient opens and clicks, the second's pixel is only prefetched (HEAD: a machine)."""
    messages = sorted(devserver.outbox.glob(f"{campaign_id}-*.eml"))
    assert len(messages) == RECIPIENTS
    first, second = (_tracking_urls(message, devserver.tracking_url) for message in messages[:2])
    with httpx.Client(timeout=10) as client:
        assert client.get(first["o"]).status_code == 200
        assert client.get(first["c"]).is_redirect  # to the template's own link, not followed: no network
        assert client.head(second["o"]).status_code == 200

    def recorded() -> bool:
        totals = json.loads(devserver.campaigns("campaign", "report", str(campaign_id), "--json"))["totals"]
        return totals["unique_opens"] == 2 and totals["unique_clicks"] == 1

    _eventually(recorded, "the tracking app's events in the database", timeout=60)


def test_campaign_report_shows_the_funnel_of_a_sent_campaign(
    page: Page, devserver: DevServer, screenshot: Callable[[Page, str], Path]
) -> None:
    campaign_id = _sent_campaign(devserver)
    _play_recipients(devserver, campaign_id)
    report = json.loads(devserver.campaigns("campaign", "report", str(campaign_id), "--json"))["totals"]

    page.goto(f"{devserver.url}/assets/campaign_report?view=partitions&partition={campaign_id}")
    page.get_by_role("button", name=re.compile("Materialize")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Launch runs to materialize campaign_report")
    dialog.get_by_role("button", name="Launch 1 run").click()
    expect(dialog).to_be_hidden()
    # The toast says "Launched run <id>" with a View link to the run.
    page.get_by_role("region", name=re.compile("Notifications")).get_by_text("View", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    page.goto(f"{devserver.url}/assets/campaign_report?view=partitions&partition={campaign_id}")

    expected = {
        "status": "completed",
        "contacts": RECIPIENTS,
        "sent": RECIPIENTS,
        "unique_opens": 2,
        "human_unique_opens": 1,
        "unique_clicks": 1,
        "human_unique_clicks": 1,
    }
    for key, value in expected.items():
        assert key == "status" or report[key] == value, (key, report)
        # First: the markdown funnel further down holds rows of its own ("contacts 12").
        expect(page.get_by_role("row", name=f"{key} {value}", exact=True).first).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^funnel "))).to_contain_text("opened: human / raw")
    screenshot(page, "4-campaign_report-funnel")

    report_url = page.get_by_role("row", name=re.compile(r"^report_url "))
    html_report = report_url.get_by_role("link", name=re.compile("^file:")).get_attribute("href")
    page.goto(html_report)
    expect(page.locator("body")).to_contain_text("Report tour")
    screenshot(page, "5-campaign_report-html")
