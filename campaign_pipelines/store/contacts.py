"""SQL of the per-campaign contact tables (`contacts_campaign_<id>`), their outcome tables
(`outcomes_campaign_<id>`: what sending made of each contact, appended by store.sending) and
of their bulk load.

Table names are built only from the campaign's integer id, through `sql.Identifier`.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql

from campaign_pipelines.statuses import ContactStatus

_STAGING = sql.Identifier("contact_staging")


def contact_table_name(campaign_id: int) -> str:
    """The name of the campaign's contact table (the seed's contacts_campaign_123)."""
    return f"contacts_campaign_{int(campaign_id)}"


def contact_table(campaign_id: int) -> sql.Identifier:
    return sql.Identifier(contact_table_name(campaign_id))


def outcome_table(campaign_id: int) -> sql.Identifier:
    """The campaign's outcome table: one row per contact sending settled (sent, failed, unknown,
    suppressed), keyed by contact id; a contact without one is still to send."""
    return sql.Identifier(f"outcomes_campaign_{int(campaign_id)}")


def contact_table_exists(conn: psycopg.Connection, campaign_id: int) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (contact_table_name(campaign_id),)).fetchone()
    return bool(row and row[0])


def create_contact_table(conn: psycopg.Connection, campaign_id: int) -> int:
    """Create the campaign's contact table if it is missing; returns the contacts it already holds."""
    table = contact_table(campaign_id)
    if contact_table_exists(conn, campaign_id):
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        assert row is not None
        return int(row[0])
    conn.execute(
        sql.SQL(
            "CREATE TABLE {table} ("
            # The primary key on id is added at launch (`create_send_indexes`): only sending and
            # tracking look contacts up by id, and an index kept up to date during the import
            # costs PostgreSQL about a quarter of its load time.
            " id bigint GENERATED ALWAYS AS IDENTITY,"
            # The unique index on email is the upsert key and the duplicate guard; "C"
            # collation (emails are lower-cased ASCII) makes it cheap.
            ' email text COLLATE "C" NOT NULL UNIQUE,'
            # json, not jsonb: stored as orjson wrote it, checked once, never converted (jsonb
            # input was 60% of PostgreSQL's import cost); nothing queries inside attributes.
            " attributes json NOT NULL)"
            # Written by imports only: sending appends to the outcome table, never updates these
            # rows (a contact updated twice per send was most of sending's database cost).
            # Room on each page: a re-imported record's new attributes (not indexed) stay on
            # its page as a HOT update, with no new index entries (import merges -25%).
            " WITH (fillfactor = 90)"
        ).format(table=table)
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (contact_id bigint PRIMARY KEY, line_id bigint,"
            " status smallint NOT NULL, message_id text, error text, at timestamptz NOT NULL DEFAULT now())"
        ).format(outcome_table(campaign_id))
    )
    return 0


def drop_contact_table(conn: psycopg.Connection, campaign_id: int) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(contact_table(campaign_id)))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(outcome_table(campaign_id)))


def create_send_indexes(conn: psycopg.Connection, campaign_id: int) -> None:
    """The index only sending needs: built once at launch, cheaper than growing it during the import."""
    table = contact_table(campaign_id)
    # Sending, tracking and webhooks find contacts by id.
    has_key = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = %s::regclass AND indisprimary)",
        (contact_table_name(campaign_id),),
    ).fetchone()
    if not (has_key and has_key[0]):
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(table))
    # Fresh statistics for the claims' and reports' plans.
    conn.execute(sql.SQL("ANALYZE {}").format(table))


def create_staging(conn: psycopg.Connection) -> None:
    """A session-local table without WAL, emptied after each batch."""
    conn.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (email text NOT NULL, attributes text NOT NULL)").format(_STAGING)
    )
    # A batch lost in a crash is reloaded by the next import: durability of each commit
    # is not worth a disk flush per batch.
    conn.execute("SET synchronous_commit = off")


def _copy(conn: psycopg.Connection, table: sql.Identifier, chunks: Iterable[bytes]) -> None:
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} (email, attributes) FROM STDIN").format(table)) as copy:
        for chunk in chunks:
            copy.write(chunk)


def copy_into_staging(conn: psycopg.Connection, chunks: Iterable[bytes]) -> None:
    """Load rows already in COPY text format ("email<TAB>attributes\\n" ...)."""
    _copy(conn, _STAGING, chunks)


def copy_new_contacts(conn: psycopg.Connection, campaign_id: int, chunks: Iterable[bytes]) -> bool:
    """COPY rows (as `copy_into_staging`) straight into the contact table, all or nothing.

    Returns False, having written nothing, when any email is already there: that batch
    must go through the staging upsert instead.
    """
    try:
        with conn.transaction():
            _copy(conn, contact_table(campaign_id), chunks)
    except psycopg.errors.UniqueViolation:
        return False
    return True


def upsert_from_staging(conn: psycopg.Connection, campaign_id: int) -> tuple[int, int]:
    """Merge the staged batch into the contact table; the staged record wins.

    Returns (new contacts, contacts whose attributes changed). Unchanged rows are not
    rewritten, so importing the same file twice writes nothing.
    """
    table = contact_table(campaign_id)
    row = conn.execute(
        sql.SQL(
            "WITH merged AS ("
            " INSERT INTO {table} AS c (email, attributes)"
            " SELECT email, attributes::json FROM {staging}"
            " ON CONFLICT (email) DO UPDATE SET attributes = EXCLUDED.attributes"
            " WHERE c.attributes::text IS DISTINCT FROM EXCLUDED.attributes::text"
            " RETURNING (xmax = 0) AS inserted)"
            " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged"
        ).format(table=table, staging=_STAGING)
    ).fetchone()
    conn.execute(sql.SQL("TRUNCATE {}").format(_STAGING))
    assert row is not None
    return int(row[0]), int(row[1])


def count_blacklisted(conn: psycopg.Connection, campaign_id: int) -> int:
    """How many of the campaign's contacts are blacklisted: one index probe per blacklisted
    address (or a join, as the planner sees fit), never a scan just to count."""
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM blacklist b WHERE EXISTS (SELECT 1 FROM {} c WHERE c.email = b.email)").format(
            contact_table(campaign_id)
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


def count_blacklisted_now(conn: psycopg.Connection, campaign_id: int) -> int:
    """The campaign's contacts blacklisted now: those skipped as blacklisted (suppressed, even if
    taken off the list since) and those on the blacklist today, sent or not (an unsubscribe, a
    bounce or a complaint after the send). A scan of the campaign's table: for status, not for loops."""
    row = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM {} c WHERE EXISTS (SELECT 1 FROM {} o WHERE o.contact_id = c.id"
            " AND o.status = {suppressed}) OR EXISTS (SELECT 1 FROM blacklist b WHERE b.email = c.email)"
        ).format(
            contact_table(campaign_id), outcome_table(campaign_id), suppressed=sql.Literal(ContactStatus.SUPPRESSED)
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


def contacts_by_email(conn: psycopg.Connection, campaign_id: int) -> dict[str, dict]:
    """Every contact of a campaign keyed by email (for small campaigns: reports, tests)."""
    rows = conn.execute(sql.SQL("SELECT email, attributes FROM {}").format(contact_table(campaign_id)))
    return dict(rows.fetchall())
