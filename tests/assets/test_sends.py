"""`campaign_sends` in the asset graph, and the record a send run makes of it."""

from __future__ import annotations

import dagster as dg

from campaign_pipelines.assets.sends import sends_materialization
from campaign_pipelines.definitions import defs
from campaign_pipelines.partitions import campaign_partitions
from campaign_pipelines.sending.progress import LineTotals, SendTotals


def _totals() -> SendTotals:
    line = LineTotals(
        label="line 1",
        sender="L'équipe Promo <offres@mondomaine.com>",
        server="Brevo - Compte Principal",
        status="quota_reached",
        reason="reached 5/day, stopping until 2025-11-29 00:00 Europe/Paris",
        sent=5,
        failed=1,
        unknown=2,
        suppressed=1,
    )
    return SendTotals(
        campaign_id=7, status="running", total=12, sent=5, failed=1, unknown=2, suppressed=1, lines=[line]
    )


def test_campaign_sends_follows_the_import_on_the_campaign_partitions() -> None:
    graph = defs.resolve_asset_graph()
    sends = graph.get(dg.AssetKey("campaign_sends"))
    assert sends.parent_keys == {dg.AssetKey("campaign_contacts")}
    assert sends.partitions_def == campaign_partitions
    for key in ("campaign_contacts", "campaign_sends"):
        assert graph.get(dg.AssetKey(key)).group_name == "campaigns"


def test_descriptions_hold_no_angle_brackets_outside_code() -> None:
    # The UI renders descriptions as Markdown: a bare <id> is swallowed as an HTML tag.
    for key in ("campaign_contacts", "campaign_sends"):
        description = defs.resolve_asset_graph().get(dg.AssetKey(key)).description
        assert description
        outside_code = description.split("`")[::2]
        assert not any("<" in part for part in outside_code), description


def test_the_record_holds_the_campaign_figures_and_a_table_per_line() -> None:
    record = sends_materialization(_totals(), rate_per_s=2.5)

    assert record.asset_key == dg.AssetKey("campaign_sends")
    assert record.partition == "7"
    values = {key: value.value for key, value in record.metadata.items() if key != "lines"}
    assert values == {
        "status": "running",
        "total": 12,
        "sent": 5,
        "failed": 1,
        "unknown": 2,
        "suppressed": 1,
        "pending": 3,
        "rate_per_s": 2.5,
        "sent_per_minute": 150.0,
    }
    (row,) = record.metadata["lines"].value.records
    assert row.data["line"] == "line 1"
    assert row.data["reason"] == "reached 5/day, stopping until 2025-11-29 00:00 Europe/Paris"
