"""The operator's tour in a real browser: Debian's chromium on the Dagster UI of a real `make dev`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from campaign_pipelines.store.campaigns import list_campaigns
from campaign_pipelines.store.connection import connect
from tests.browser.conftest import CHROMIUM, LOCATION, DevServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: apt-get install chromium chromium-driver (.ci/run does)"
    ),
]

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = "Black Friday"
CREATE_CAMPAIGN_CONFIG = f"""\
ops:
  create_draft:
    config:
      name: Browser tour
      subject: "Offres exclusives"
      template: {TEMPLATE}
"""


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
    devserver.campaigns("template", "add", TEMPLATE, "--file", str(REPO / "examples" / "black_friday.html"))

    _fill_launchpad(page, devserver, "create_campaign", CREATE_CAMPAIGN_CONFIG)
    expect(page.get_by_text("No errors")).to_be_visible()
    screenshot(page, "1-create_campaign-launchpad")
    page.get_by_role("button", name="Launch Run").click()

    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    with connect(devserver.database_url) as conn:
        (campaign,) = [row for row in list_campaigns(conn) if row.name == "Browser tour"]
    assert campaign.status == "draft"
    expect(page.get_by_text(f"created as draft: id {campaign.id}")).to_be_visible()
    screenshot(page, "2-create_campaign-run-succeeded")
