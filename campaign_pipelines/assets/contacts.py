"""`campaign_contacts`: the contact import of one campaign (the seed's ProcessCampaignImport)."""

import time

import dagster as dg

from campaign_pipelines.contacts.campaign_import import import_campaign
from campaign_pipelines.contacts.loader import ImportReport
from campaign_pipelines.partitions import campaign_id_of, campaign_partitions
from campaign_pipelines.resources.contact_files import ContactFilesResource
from campaign_pipelines.resources.database import PostgresResource

_PROGRESS_EVERY_S = 10.0


@dg.asset(
    partitions_def=campaign_partitions,
    group_name="campaigns",
    description=(
        "Contacts of one campaign in the table `contacts_campaign_<id>`: its JSON files streamed, emails"
        " normalised, duplicates merged (the last record wins), invalid records counted and skipped."
        " Materialized by `campaign_import_sensor` once the campaign is configured."
    ),
    kinds={"postgres"},
)
def campaign_contacts(
    context: dg.AssetExecutionContext, database: PostgresResource, contact_files: ContactFilesResource
) -> dg.MaterializeResult:
    campaign_id = campaign_id_of(context.partition_key)

    last_log = time.monotonic()

    def progress(report: ImportReport) -> None:
        nonlocal last_log
        if time.monotonic() - last_log >= _PROGRESS_EVERY_S:
            last_log = time.monotonic()
            context.log.info(f"campaign {campaign_id}: {report.records_read:,} records read")

    report = import_campaign(database.connect, campaign_id, contact_files.path, on_progress=progress)
    context.log.info(
        f"campaign {campaign_id}: {report.nbre_contacts:,} contacts from {len(report.files)} file(s),"
        f" {report.duplicates_merged:,} duplicates merged, {sum(report.invalid.values()):,} invalid,"
        f" {report.contacts_per_s:,.0f} records/s"
    )
    return dg.MaterializeResult(
        metadata={
            "files": dg.MetadataValue.json(report.files),
            "records_read": report.records_read,
            "imported": report.valid_records,
            "new_contacts": report.new_contacts,
            "updated_contacts": report.updated_contacts,
            "duplicates_merged": report.duplicates_merged,
            "nbre_contacts": report.nbre_contacts,
            "blacklisted_contacts": report.blacklisted_contacts,
            "invalid_by_reason": dg.MetadataValue.json(report.invalid),
            "invalid_samples": dg.MetadataValue.json(report.samples),
            "records_per_s": round(report.contacts_per_s),
            "duration_s": round(report.duration_s, 2),
        }
    )
