"""`campaign_report`: one campaign's results, as Dagster metadata, an HTML file and a per-contact Parquet file.

Materialized by `campaign_report_sensor` (every minute while the campaign runs, less often when a
report takes over 6 s, then daily for 30 days) or on demand (Materialize, partition = campaign
id). Its checks warn when a line's complaint or hard-bounce rate passes what mailbox providers
tolerate, and fail when nothing can be sent.
"""

import dagster as dg
from pydantic import Field

from campaign_pipelines.assets.sends import campaign_sends
from campaign_pipelines.errors import NotFoundError
from campaign_pipelines.partitions import campaign_id_of, campaign_partitions
from campaign_pipelines.reports.model import CampaignReport, Funnel
from campaign_pipelines.reports.publish import PublishedReport, publish_report
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.resources.report_files import ReportFilesResource

# Gmail and Yahoo's bulk sender rules: stay under 0.1 % spam complaints; bounces past 2 % hurt reputation.
MAX_COMPLAINT_RATE = 0.001
MAX_HARD_BOUNCE_RATE = 0.02

COMPLAINT_CHECK, HARD_BOUNCE_CHECK, SENDABLE_CHECK = (
    "complaint_rate_per_line",
    "hard_bounce_rate_per_line",
    "has_sendable_contacts",
)

_COUNTS = tuple(Funnel.__dataclass_fields__)
_RATES = tuple(Funnel().rates())
_FUNNEL_COLUMNS = [
    dg.TableColumn("contacts", "int"),
    dg.TableColumn("sent", "int"),
    dg.TableColumn("open_rate_pct", "float", description="Contacts who opened, of those sent (raw)"),
    dg.TableColumn("human_open_rate_pct", "float", description="The same without Apple MPP, scanners, prefetch"),
    dg.TableColumn("click_rate_pct", "float"),
    dg.TableColumn("human_click_rate_pct", "float"),
    dg.TableColumn("hard_bounce_rate_pct", "float"),
    dg.TableColumn("complaint_rate_pct", "float"),
    dg.TableColumn("unsubscribed", "int"),
]


def _pct(rate: float) -> float:
    return round(100 * rate, 3)


def _funnel_record(funnel: Funnel) -> dict[str, int | float]:
    rates = funnel.rates()
    return {
        "contacts": funnel.contacts,
        "sent": funnel.sent,
        **{f"{name}_pct": _pct(rates[name]) for name in ("open_rate", "human_open_rate", "click_rate")},
        **{f"{name}_pct": _pct(rates[name]) for name in ("human_click_rate", "hard_bounce_rate", "complaint_rate")},
        "unsubscribed": funnel.unsubscribed,
    }


def _table(rows: list[tuple[str, Funnel]], first: dg.TableColumn) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({first.name: label, **_funnel_record(funnel)}) for label, funnel in rows],
        schema=dg.TableSchema(columns=[first, *_FUNNEL_COLUMNS]),
    )


def _markdown(report: CampaignReport) -> str:
    t, rates = report.totals, report.totals.rates()
    rows = [
        ("contacts", f"{t.contacts:,}"),
        ("sendable", f"{report.sendable:,}"),
        ("sent", f"{t.sent:,}"),
        ("failed / unknown / suppressed / pending", f"{t.failed:,} / {t.unknown:,} / {t.suppressed:,} / {t.pending:,}"),
        ("delivered", f"{t.delivered:,} ({rates['delivery_rate']:.1%})"),
        ("bounced (hard / soft)", f"{t.bounced:,} ({t.hard_bounced:,} / {t.soft_bounced:,})"),
        ("complaints", f"{t.complained:,} ({rates['complaint_rate']:.2%})"),
        (
            "opened: human / raw",
            f"{t.human_unique_opens:,} / {t.unique_opens:,}"
            f" ({rates['human_open_rate']:.1%} / {rates['open_rate']:.1%})",
        ),
        (
            "clicked: human / raw",
            f"{t.human_unique_clicks:,} / {t.unique_clicks:,}"
            f" ({rates['human_click_rate']:.1%} / {rates['click_rate']:.1%})",
        ),
        ("unsubscribed", f"{t.unsubscribed:,}"),
    ]
    lines = ["| step | contacts |", "|---|---:|", *(f"| {step} | {value} |" for step, value in rows)]
    lines += [f"\n> {note}" for note in report.notes]
    return "\n".join(lines)


class ReportConfig(dg.Config):
    outcomes_while_running: bool = Field(
        default=False,
        description=(
            "Also write the per-contact outcomes (outcomes/, Parquet files) while the campaign is running."
            " It is always written once the campaign is not running (completed, paused, cancelled, or not"
            " launched yet); while it sends, its report is refreshed every minute without it, which costs"
            " about half as much."
        ),
    )


def report_metadata(published: PublishedReport) -> dict[str, object]:
    """Stable keys: every count and rate (percent) of the whole campaign plots over time in the Plots tab."""
    report = published.report
    totals, rates = report.totals, report.totals.rates()
    metadata: dict[str, object] = {
        "status": report.status,
        "sendable": report.sendable,
        **{name: getattr(totals, name) for name in _COUNTS},
        "bounced": totals.bounced,
        **{f"{name}_pct": _pct(rates[name]) for name in _RATES},
        "funnel": dg.MetadataValue.md(_markdown(report)),
        "per_line": _table(
            [(f"{line.label} · {line.server}", line.funnel) for line in report.lines],
            dg.TableColumn("line", "string", description="As in `campaigns campaign status`: line <position>"),
        ),
        "per_domain": _table(
            [(d.domain, d.funnel) for d in report.domains]
            + ([("(other domains)", report.other_domains)] if report.other_domains.contacts else []),
            dg.TableColumn("domain", "string"),
        ),
        "per_link": dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {
                        "link": link.url or f"(link {link.idx}, no longer in the template)",
                        "clicks": link.clicks,
                        "unique_clicks": link.unique_clicks,
                        "human_clicks": link.human_clicks,
                        "human_unique_clicks": link.human_unique_clicks,
                    }
                )
                for link in report.links
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("link", "string"),
                    *(
                        dg.TableColumn(name, "int")
                        for name in ("clicks", "unique_clicks", "human_clicks", "human_unique_clicks")
                    ),
                ]
            ),
        ),
        "notes": dg.MetadataValue.text("\n".join(report.notes) or "none"),
        "report_html": dg.MetadataValue.path(str(published.html)),
        "report_url": dg.MetadataValue.url(published.html.as_uri()),
    }
    if published.outcomes is not None:
        # A folder: one Parquet file per slice of contacts, read as one table (reports.publish).
        metadata["outcomes_parquet"] = dg.MetadataValue.path(str(published.outcomes))
    return metadata


def _line_rate_check(report: CampaignReport, name: str, rate: str, limit: float, what: str) -> dg.AssetCheckResult:
    over = {line.label: line.funnel.rates()[rate] for line in report.lines if line.funnel.rates()[rate] >= limit}
    return dg.AssetCheckResult(
        check_name=name,
        passed=not over,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{what} at or above {limit:.1%} on " + ", ".join(f"{label} ({value:.2%})" for label, value in over.items())
            if over
            else f"{what} under {limit:.1%} on every line"
        ),
        metadata={f"{line.label}_pct": _pct(line.funnel.rates()[rate]) for line in report.lines},
    )


def report_checks(report: CampaignReport) -> list[dg.AssetCheckResult]:
    return [
        _line_rate_check(report, COMPLAINT_CHECK, "complaint_rate", MAX_COMPLAINT_RATE, "complaint rate"),
        _line_rate_check(report, HARD_BOUNCE_CHECK, "hard_bounce_rate", MAX_HARD_BOUNCE_RATE, "hard-bounce rate"),
        dg.AssetCheckResult(
            check_name=SENDABLE_CHECK,
            passed=report.sendable > 0,
            description=(
                f"{report.sendable:,} contacts sent or to send"
                if report.sendable
                else "no contact can be sent: " + ("; ".join(report.notes) or "every contact is blacklisted")
            ),
            metadata={"sendable": report.sendable},
        ),
    ]


@dg.asset(
    partitions_def=campaign_partitions,
    deps=[campaign_sends],
    group_name="campaigns",
    kinds={"duckdb", "parquet", "html"},
    description=(
        "The results of one campaign: its funnel (contacts, sendable, sent, delivered, bounces, complaints,"
        " opens and clicks with human-only rates beside raw ones, unsubscribes) per line, recipient domain,"
        " hour since launch and tracked link; an HTML report and, once the campaign is not running, the"
        " per-contact outcomes (a folder of Parquet files, one table: `read_parquet('outcomes/*.parquet')`)"
        " in `$CAMPAIGNS_HOME/reports/campaign-<id>/`. Read-only: never blocks sending or tracking."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            COMPLAINT_CHECK, asset="campaign_report", description="Every line's spam-complaint rate under 0.1 %."
        ),
        dg.AssetCheckSpec(
            HARD_BOUNCE_CHECK, asset="campaign_report", description="Every line's hard bounces under 2 %."
        ),
        dg.AssetCheckSpec(SENDABLE_CHECK, asset="campaign_report", description="At least one contact can be sent."),
    ],
)
def campaign_report(
    context: dg.AssetExecutionContext,
    config: ReportConfig,
    database: PostgresResource,
    report_files: ReportFilesResource,
) -> dg.MaterializeResult:
    campaign_id = campaign_id_of(context.partition_key)
    try:
        published = publish_report(
            database.url, campaign_id, report_files.path, outcomes_while_running=config.outcomes_while_running
        )
    except NotFoundError as error:
        raise dg.Failure(description=f"partition '{context.partition_key}': {error}") from None
    report = published.report
    context.log.info(
        f"campaign {campaign_id} '{report.name}': {report.totals.sent:,} of {report.totals.contacts:,} sent,"
        f" report in {published.html}"
        + (f", per-contact outcomes in {published.outcomes / '*.parquet'}" if published.outcomes else "")
    )
    return dg.MaterializeResult(metadata=report_metadata(published), check_results=report_checks(report))
