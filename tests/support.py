"""What tests in several folders share besides fixtures: the seed's servers and files, how a
failed Dagster step reads, a provider's delivery event as its webhook would record it, and
contacts' send outcomes read or set as sending records them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql

from campaign_pipelines import blacklist
from campaign_pipelines.settings import as_sqlalchemy_url, with_database
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store.contacts import contact_table, outcome_table

SEED_CONTACTS = Path(__file__).resolve().parents[1] / "contacts"
SEED_FILES = ["nouveaux_inscrits.json", "clients_vip.json"]
# The seed's two sending servers; their keys are fakes the tests check never leak.
BREVO_SERVER = "Brevo - Compte Principal"
SENDGRID_SERVER = "SendGrid - Secours"
BREVO_KEY = "xkeysib-brevo-secret-0123456789"
SENDGRID_KEY = "SG.sendgrid-secret-9876543210"


@contextmanager
def dagster_home_in(home: Path, pg_server_url: str) -> Iterator[Path]:
    """`home` made a DAGSTER_HOME whose runs and events live in a PostgreSQL database of their own
    (as with `make dev`), dropped when the block ends."""
    name = f"cp_dagster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    storage_url = as_sqlalchemy_url(with_database(pg_server_url, name))
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: '{storage_url}'\ntelemetry:\n  enabled: false\n", encoding="utf-8"
    )
    try:
        yield home
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def refusal(result: dg.ExecuteInProcessResult) -> tuple[str, list[str]]:
    """What the UI shows for a refused form: the Failure's description, and its problems as metadata."""
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    # The user's Failure itself, not a step error wrapping it, and no chained traceback of ours.
    assert (error.cls_name, error.cause) == ("Failure", None)
    user = failure.step_failure_data.user_failure_data
    problems = [value.value for key, value in user.metadata.items() if key.startswith("problem ")]
    return user.description, problems


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """A refused form's description, which holds every one of its problems."""
    description, problems = refusal(result)
    assert all(problem in description for problem in problems)
    return description


def step_error(result: dg.ExecuteInProcessResult) -> str:
    """What the failed step raised, then each error that caused it, one a line."""
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def record_delivery(db: psycopg.Connection, campaign_id: int, contact_id: int, event: str) -> None:
    """A Brevo delivery event for contact `contact_id` (user<id - 1>@example.com), as its webhook records it."""
    blacklist.record_delivery_events(
        db,
        [
            blacklist.DeliveryEvent(
                provider="brevo",
                event_id=f"{event}-{contact_id}",
                event=event,
                email=f"user{contact_id - 1}@example.com",
                send_id=f"{campaign_id}-{contact_id}",
                detail=None,
                occurred_at=datetime.now(UTC),
            )
        ],
        soft_bounce_limit=3,
    )


def contact_outcomes(db: psycopg.Connection, campaign_id: int, status: ContactStatus) -> list[tuple[str, str | None]]:
    """(email, error) of the campaign's contacts recorded in `status`, by email."""
    return db.execute(
        sql.SQL(
            "SELECT c.email, o.error FROM {} c JOIN {} o ON o.contact_id = c.id WHERE o.status = %s ORDER BY c.email"
        ).format(contact_table(campaign_id), outcome_table(campaign_id)),
        (status,),
    ).fetchall()


def statuses_by_email(db: psycopg.Connection, campaign_id: int) -> dict[str, int]:
    """Every contact's send status (PENDING for one without an outcome, leased or not)."""
    rows = db.execute(
        sql.SQL("SELECT c.email, coalesce(o.status, %s) FROM {} c LEFT JOIN {} o ON o.contact_id = c.id").format(
            contact_table(campaign_id), outcome_table(campaign_id)
        ),
        (ContactStatus.PENDING,),
    )
    return dict(rows.fetchall())


def set_outcomes(
    db: psycopg.Connection,
    campaign_id: int,
    status: ContactStatus,
    *,
    emails: list[str] | None = None,
    line_id: int | None = None,
) -> list[int]:
    """Record `status` for these contacts (every one without `emails`), as a line would have,
    with no provider involved; returns their ids."""
    rows = db.execute(
        sql.SQL(
            "INSERT INTO {outcomes} (contact_id, line_id, status)"
            " SELECT id, %(line)s, %(status)s FROM {contacts}"
            " WHERE %(emails)s::text[] IS NULL OR email = ANY(%(emails)s)"
            " ON CONFLICT (contact_id) DO UPDATE SET status = EXCLUDED.status, line_id = EXCLUDED.line_id"
            " RETURNING contact_id"
        ).format(outcomes=outcome_table(campaign_id), contacts=contact_table(campaign_id)),
        {"line": line_id, "status": status, "emails": emails},
    )
    return [row[0] for row in rows]
