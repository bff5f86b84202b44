"""One campaign's import, status included: processing → scheduled, or failed with the reason."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from campaign_pipelines.campaigns import resolve_contact_file
from campaign_pipelines.contacts.file_errors import ContactFileError
from campaign_pipelines.contacts.loader import Connect, ImportReport, import_contact_files
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.statuses import START_IMPORT
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import contacts as contact_sql

# How long an import that lost its database keeps trying to say so on the campaign.
REPORT_FOR_S = 30.0
_REPORT_EVERY_S = 1.0


def import_campaign(
    connect: Connect,
    campaign_id: int,
    contacts_dir: Path,
    *,
    on_progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import the campaign's configured contact files; the campaign's status follows.

    The first import after a (re)configuration starts from an empty contact table; importing
    again merges (the last record wins) and changes nothing when the files did not change.
    Any error marks the campaign `failed` with its message (the file and byte offset for
    bad JSON) and is raised again; what was loaded before stays and is merged next time. A lost
    database connection is no fault of the files: the campaign stays `processing` with the
    error, written as soon as the database answers again, and the import sensor retries it.
    """
    with connect() as conn:
        campaign = campaign_sql.campaign_by_id(conn, campaign_id)
        if campaign is None:
            raise NotFoundError(f"campaign {campaign_id} does not exist")
        if not START_IMPORT.allows(campaign.status):
            raise ValidationError(
                f"campaign {campaign_id}",
                [
                    f"status is '{campaign.status}': contacts are imported only for a configured campaign"
                    f" ({START_IMPORT.from_words})"
                ],
            )
        if not campaign_sql.try_lock_import(conn, campaign_id):
            raise ValidationError(f"campaign {campaign_id}", ["another import of this campaign is running"])
        campaign_sql.mark_processing(conn, campaign_id)
        try:
            paths = [resolve_contact_file(contacts_dir, name) for name in campaign.contact_files]
            if campaign.imported_at is None or campaign.imported_at < campaign.configured_at:
                # A new configuration (other files) replaces the contacts; nothing was sent yet,
                # since only a campaign that never ran can be configured.
                contact_sql.drop_contact_table(conn, campaign_id)
            report = import_contact_files(connect, campaign_id, paths, on_progress=on_progress)
            # Inside the try: a database lost after the last batch is an interruption too.
            campaign_sql.mark_imported(
                conn, campaign_id, nbre_contacts=report.nbre_contacts, blacklisted=report.blacklisted_contacts
            )
        except psycopg.OperationalError as error:
            _report_interruption(connect, campaign_id, error)
            raise
        except Exception as error:
            campaign_sql.mark_failed(conn, campaign_id, failure_message(error))
            raise
        return report


def _report_interruption(connect: Connect, campaign_id: int, error: psycopg.OperationalError) -> None:
    """Write why the import stopped on a new connection, retrying while the database restarts."""
    reason = f"import interrupted, retried automatically: lost the database ({str(error).strip() or 'no detail'})"
    deadline = time.monotonic() + REPORT_FOR_S
    while True:
        try:
            with connect() as conn:
                campaign_sql.mark_interrupted(conn, campaign_id, reason)
            return
        except psycopg.OperationalError:
            if time.monotonic() >= deadline:
                return  # still down: the sensor finds the campaign processing with no live import
            time.sleep(_REPORT_EVERY_S)


def failure_message(error: BaseException) -> str:
    """The reason an import failed, as its campaign shows it: never empty.

    Our errors say what is wrong in the user's words; any other is named by its type, which
    is all a MemoryError says.
    """
    message = str(error).strip()
    if isinstance(error, ContactFileError | ValidationError | NotFoundError) and message:
        return message
    name = type(error).__name__
    return f"{name}: {message}" if message else name
