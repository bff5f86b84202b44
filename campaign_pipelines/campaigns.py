"""The two steps of a campaign (seed §2): create a draft, then configure files and lines.

Plain functions over a psycopg connection (autocommit), called by the Dagster ops and the
CLI alike. Validation reports every problem at once and changes nothing when any exists.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from campaign_pipelines.contacts.records import normalize_email
from campaign_pipelines.errors import NotFoundError, ValidationError, existing_names, unknown
from campaign_pipelines.headers import header_problem
from campaign_pipelines.statuses import CONFIGURE
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import catalog


@dataclass(frozen=True)
class LineSpec:
    """One sending line as a user gives it (Launchpad form, CLI option, JSON file), checked by
    `configure_campaign`; empty rules mean the seed's defaults."""

    sender_name: str
    sender_email: str
    server: str
    send_frequency_minutes: float | None = None
    max_daily_sends: int | None = None
    scheduled_at: str | datetime | None = None


def create_campaign(conn: psycopg.Connection, *, name: str, subject: str, template: str) -> int:
    """Step 1: a campaign in status draft, holding a snapshot of its template."""
    problems = []
    if not name.strip():
        problems.append("name is empty")
    if not subject.strip():
        problems.append("subject is empty")
    elif problem := header_problem("subject", subject.strip()):
        problems.append(problem)
    found = catalog.template_by_name(conn, template)
    if found is None:
        problems.append(unknown("template", template, [row.name for row in catalog.list_templates(conn)]))
    if problems:
        raise ValidationError(f"campaign '{name}'", problems)
    assert found is not None
    return campaign_sql.insert_campaign(
        conn, name=name.strip(), subject=subject.strip(), template_id=found.id, html=found.html
    )


def resolve_contact_file(contacts_dir: Path, name: str) -> Path:
    """The file `name` inside `contacts_dir`; anything resolving outside it is refused."""
    root = contacts_dir.resolve()
    candidate = Path(name)
    if candidate.is_absolute():
        raise ValidationError("contact file", [f"'{name}' must be a name relative to the contacts directory"])
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise ValidationError("contact file", [f"'{name}' is outside the contacts directory"])
    return resolved


def _contact_file_problems(contacts_dir: Path, files: list[str]) -> list[str]:
    problems = []
    if not files:
        present = _file_names(contacts_dir) if contacts_dir.is_dir() else []
        problems.append(f"at least one contact file is required; {existing_names('contact file', present)}")
    if not contacts_dir.is_dir():
        return [*problems, f"the contacts directory {contacts_dir} does not exist"]
    seen: set[Path] = set()
    for name in files:
        try:
            path = resolve_contact_file(contacts_dir, name)
        except ValidationError as error:
            problems.extend(error.problems)
            continue
        if path in seen:
            problems.append(f"contact file '{name}' is listed twice")
        seen.add(path)
        if not path.is_file():
            problems.append(f"{unknown('contact file', name, _file_names(contacts_dir))} (in {contacts_dir})")
        elif not os.access(path, os.R_OK):
            problems.append(f"contact file '{name}' is not readable")
    return problems


def _file_names(contacts_dir: Path) -> list[str]:
    """The files a configure step may name, hidden ones aside."""
    relative = (path.relative_to(contacts_dir) for path in contacts_dir.rglob("*") if path.is_file())
    return sorted(str(path) for path in relative if not any(part.startswith(".") for part in path.parts))


def _parse_start(value: str | datetime | None) -> datetime | None:
    """ISO 8601; a time without a zone is taken as UTC."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _line_problems(conn: psycopg.Connection, specs: list[LineSpec]) -> tuple[list[str], list[campaign_sql.NewLine]]:
    problems: list[str] = []
    lines: list[campaign_sql.NewLine] = []
    if not specs:
        problems.append("at least one sending line is required")
    known = catalog.list_servers(conn)
    active = [server.name for server in known if server.active]
    for number, spec in enumerate(specs, start=1):
        where = f"line {number}"
        if not spec.sender_name.strip():
            problems.append(f"{where}: sender name is empty")
        elif problem := header_problem("sender name", spec.sender_name.strip()):
            problems.append(f"{where}: {problem}")
        sender_email = normalize_email(spec.sender_email or "")
        if problem := header_problem("sender email", (spec.sender_email or "").strip()):
            problems.append(f"{where}: {problem}")
        elif sender_email is None:
            problems.append(f"{where}: sender email {spec.sender_email!r} is not a valid address")
        server = next((server for server in known if server.name == spec.server), None)
        if server is None:
            problems.append(f"{where}: {unknown('server', spec.server, [server.name for server in known])}")
        elif not server.active:
            problems.append(
                f"{where}: server '{spec.server}' is inactive; {existing_names('server', active, adjective='active')}"
            )
        frequency = spec.send_frequency_minutes
        if frequency is not None and frequency < 0:
            problems.append(f"{where}: send_frequency_minutes is negative ({frequency})")
        quota = spec.max_daily_sends
        if quota is not None and quota < 1:
            problems.append(f"{where}: max_daily_sends must be at least 1 (leave it empty for no limit), got {quota}")
        try:
            start = _parse_start(spec.scheduled_at)
        except ValueError:
            problems.append(f"{where}: scheduled_at {spec.scheduled_at!r} is not an ISO 8601 date-time")
            start = None
        if server is not None and sender_email is not None:
            lines.append(
                campaign_sql.NewLine(
                    sender_name=spec.sender_name.strip(),
                    sender_email=sender_email,
                    server_id=server.id,
                    send_frequency_minutes=frequency or None,
                    max_daily_sends=quota,
                    scheduled_at=start,
                )
            )
    return problems, lines


def campaign_choices(conn: psycopg.Connection, statuses: Collection[str], able: str, *, none: str) -> str:
    """The campaigns an action may name (`able`: "be configured", "be sent"...), for an error
    that names none of them; `none` when there is no such campaign."""
    found = [
        f"{row.id} '{row.name}' ({row.status})" for row in campaign_sql.list_campaigns(conn) if row.status in statuses
    ]
    if not found:
        return none
    return f"campaigns that can {able}: {', '.join(found[:10])}" + (" and more" if len(found) > 10 else "")


def _configurable(conn: psycopg.Connection) -> str:
    """The campaigns a configure step may name."""
    return campaign_choices(
        conn,
        CONFIGURE.sources,
        "be configured",
        none="no campaign can be configured: create one with create_campaign first",
    )


def newest_draft(conn: psycopg.Connection) -> int:
    """The id of the most recently created draft: the campaign a configure step without an id means."""
    campaign_id = campaign_sql.newest_draft_id(conn)
    if campaign_id is None:
        raise NotFoundError(f"no campaign is a draft; {_configurable(conn)}")
    return campaign_id


def configure_campaign(
    conn: psycopg.Connection,
    campaign_id: int,
    *,
    contact_files: list[str],
    lines: list[LineSpec],
    contacts_dir: Path,
) -> campaign_sql.CampaignRow:
    """Step 2: contact files and sending lines; the campaign becomes scheduled.

    Its template snapshot is taken now. The import is started by the import sensor.
    """
    what = f"campaign {campaign_id}"
    campaign = campaign_sql.campaign_by_id(conn, campaign_id)
    if campaign is None:
        raise NotFoundError(f"campaign {campaign_id} does not exist; {_configurable(conn)}")
    problems = []
    if not CONFIGURE.allows(campaign.status):
        problems.append(f"status is '{campaign.status}': only a {CONFIGURE.from_words} campaign can be configured")
    problems += _contact_file_problems(contacts_dir, contact_files)
    line_problems, new_lines = _line_problems(conn, lines)
    problems += line_problems
    if problems:
        raise ValidationError(what, problems)

    with conn.transaction():
        locked = campaign_sql.campaign_by_id(conn, campaign_id, for_update=True)
        assert locked is not None
        if not CONFIGURE.allows(locked.status):
            raise ValidationError(what, [f"status changed to '{locked.status}' meanwhile"])
        template = catalog.template_by_id(conn, locked.template_id)
        campaign_sql.save_configuration(
            conn,
            campaign_id,
            contact_files=[str(Path(name)) for name in contact_files],
            lines=new_lines,
            template_html=template.html,
        )
    updated = campaign_sql.campaign_by_id(conn, campaign_id)
    assert updated is not None
    return updated
