"""`campaign_sends`: what the `send_campaign` runs did for one campaign partition.

Not computed by an asset function: sending is the `send_campaign` job (one step per line, relaunched
by sensors, stopped at quotas), so the asset is declared here and its runs record it. Every line
step logs a materialization of the campaign's partition every minute and when it stops
(`sends_materialization`), with the same metadata keys each time, so the Plots tab draws sent,
rate and pending over time and `campaign_report` downstream knows its input changed.
"""

from __future__ import annotations

import dagster as dg

from campaign_pipelines.assets.contacts import campaign_contacts
from campaign_pipelines.partitions import campaign_key, campaign_partitions
from campaign_pipelines.sending.progress import SendTotals

campaign_sends = dg.AssetSpec(
    "campaign_sends",
    deps=[campaign_contacts],
    partitions_def=campaign_partitions,
    group_name="campaigns",
    kinds={"postgres"},
    description=(
        "The sends of one campaign: sent, failed, unknown (a crash mid-call), suppressed (blacklisted)"
        " and pending contacts, the send rate and each sending line's state. Recorded by the"
        " `send_campaign` runs every minute while a line sends and when it stops; sensors start those"
        " runs (launch it from the `send_campaign` job, not from here)."
    ),
)

_LINE_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("line", "string", description="Position in the campaign, as in `campaigns campaign status`"),
        dg.TableColumn("sender", "string"),
        dg.TableColumn("server", "string"),
        dg.TableColumn("status", "string"),
        dg.TableColumn("sent", "int"),
        dg.TableColumn("failed", "int"),
        dg.TableColumn("unknown", "int"),
        dg.TableColumn("suppressed", "int"),
        dg.TableColumn("reason", "string"),
    ]
)


def sends_materialization(totals: SendTotals, *, rate_per_s: float) -> dg.AssetMaterialization:
    """The campaign's sends now; `rate_per_s` is what was sent per second since the previous record."""
    return dg.AssetMaterialization(
        asset_key=campaign_sends.key,
        partition=campaign_key(totals.campaign_id),
        metadata={
            "status": totals.status,
            "total": totals.total,
            "sent": totals.sent,
            "failed": totals.failed,
            "unknown": totals.unknown,
            "suppressed": totals.suppressed,
            "pending": totals.pending,
            "rate_per_s": round(rate_per_s, 2),
            "sent_per_minute": round(rate_per_s * 60, 1),
            "lines": dg.MetadataValue.table(
                records=[
                    dg.TableRecord(
                        {
                            "line": line.label,
                            "sender": line.sender,
                            "server": line.server,
                            "status": line.status,
                            "sent": line.sent,
                            "failed": line.failed,
                            "unknown": line.unknown,
                            "suppressed": line.suppressed,
                            "reason": line.reason or "",
                        }
                    )
                    for line in totals.lines
                ],
                schema=_LINE_COLUMNS,
            ),
        },
    )
