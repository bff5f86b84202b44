"""Opens and clicks: kept in memory as they come, written to PostgreSQL in batches by a thread.

The routes call `EventWriter.record` with a `Hit`: appending to a deque is all the request path
pays. The writer thread, with its own psycopg connection, wakes every `flush_interval_s` (or as soon
as `flush_size` hits are waiting), flags each hit (flags.py, plus prefetch by send time: one indexed
look-up of `attempted_at` per campaign and batch, off the event loop) and writes the batch with one
COPY. If PostgreSQL is down, hits are kept (up to `max_buffered`) and retried; `close()`, called by
the lifespan when uvicorn stops, writes everything left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from starlette.types import Scope

from campaign_pipelines.store import tracking as tracking_sql
from campaign_pipelines.store.tracking import EventRow
from tracking_app.flags import HUMAN, PREFETCH, client_ip, flag_of
from tracking_app.settings import IPNetwork, Settings

logger = logging.getLogger(__name__)

# kind, campaign id, contact id, link number, time.time(), peer address, X-Forwarded-For,
# User-Agent, Referer (raw header bytes, decoded by the writer), HEAD request.
Hit = tuple[int, int, int, int | None, float, str | None, bytes | None, bytes | None, bytes | None, bool]

USER_AGENT_MAX = 512
# Hits written per COPY: bigger batches after an outage, bounded so one failure retries little.
BATCH_MAX = 10_000
RETRY_MAX_S = 10.0
CONNECT_TIMEOUT_S = 5


def hit(scope: Scope, kind: int, campaign_id: int, contact_id: int, link_idx: int | None = None) -> Hit:
    """What the writer needs of a request, taken as raw as possible: this runs once per hit."""
    agent = forwarded = referrer = None
    for name, value in scope["headers"]:
        if name == b"user-agent":
            agent = value
        elif name == b"x-forwarded-for":
            forwarded = value if forwarded is None else forwarded + b"," + value
        elif name == b"referer":
            referrer = value
    client = scope.get("client")
    return (
        kind,
        campaign_id,
        contact_id,
        link_idx,
        time.time(),
        client[0] if client else None,
        forwarded,
        agent,
        referrer,
        scope["method"] == "HEAD",
    )


def origin(hit: Hit, trusted: tuple[IPNetwork, ...]) -> tuple[str | None, str | None, int]:
    """(client address, user agent, flag) of a hit, as they are written."""
    peer, forwarded, agent, referrer, head = hit[5:]
    address = client_ip(peer, _text(forwarded), trusted)
    user_agent = _text(agent, USER_AGENT_MAX)
    flag = flag_of(address, user_agent, _text(referrer), head)
    return (str(address) if address is not None else None, user_agent, flag)


def _text(raw: bytes | None, limit: int | None = None) -> str | None:
    if raw is None:
        return None
    # Header bytes are latin-1 on the wire; PostgreSQL text cannot hold NUL.
    text = raw[:limit].decode("latin-1") if limit else raw.decode("latin-1")
    return text.replace("\x00", "") if "\x00" in text else text


class EventWriter:
    """The write buffer of one app process and the thread that empties it."""

    def __init__(self, settings: Settings, connect: Callable[[], psycopg.Connection] | None = None) -> None:
        self._settings = settings
        self._connect = connect or (
            lambda: psycopg.connect(settings.database_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        )
        self._pending: deque[Hit] = deque()
        # A batch taken from _pending that is not written yet (kept across retries).
        self._batch: list[Hit] = []
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracking-event-writer", daemon=True)
        self._conn: psycopg.Connection | None = None
        self._flush_size = settings.flush_size
        self._max_buffered = settings.max_buffered
        self._prefetch = timedelta(seconds=settings.prefetch_s)
        self.written = 0
        self.dropped = 0
        self.rejected = 0

    # --- the request path --------------------------------------------------------------

    def record(self, hit: Hit) -> None:
        pending = self._pending
        if len(pending) >= self._max_buffered:
            self.dropped += 1  # logged by the writer thread, not here
            return
        pending.append(hit)
        if len(pending) >= self._flush_size:
            self._wake.set()

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Write everything recorded so far, then stop the thread (blocking: call it from a thread)."""
        self._closing.set()
        self._wake.set()
        self._thread.join()

    @property
    def buffered(self) -> int:
        return len(self._pending) + len(self._batch)

    # --- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        failing_since = 0.0
        deadline: float | None = None
        dropped_reported = 0
        while True:
            if self._closing.is_set():
                deadline = deadline or time.monotonic() + self._settings.shutdown_retry_s
            elif failures:
                # A full buffer must not turn retries into a busy loop: only closing cuts the wait short.
                self._closing.wait(_retry_delay(failures))
            else:
                self._wake.wait(self._settings.flush_interval_s)
                self._wake.clear()
            if self.dropped > dropped_reported:
                logger.error(
                    "tracking events: buffer full (%s events waiting for PostgreSQL): %s events dropped so far",
                    f"{self._max_buffered:,}",
                    f"{self.dropped:,}",
                )
                dropped_reported = self.dropped
            try:
                self._write_pending()
            except Exception as error:
                failures += 1
                if failures == 1:
                    failing_since = time.monotonic()
                self._disconnect()
                if not isinstance(error, psycopg.Error):
                    logger.exception("tracking events: unexpected error while writing a batch")
                if deadline is not None and time.monotonic() >= deadline:
                    logger.error(
                        "tracking events: PostgreSQL still unreachable at shutdown after %.0f s (%s); %s events lost",
                        self._settings.shutdown_retry_s,
                        _one_line(error),
                        f"{self.buffered:,}",
                    )
                    return
                logger.warning(
                    "tracking events: cannot write to PostgreSQL (%s); keeping %s events in memory, retrying in %.1f s",
                    _one_line(error),
                    f"{self.buffered:,}",
                    min(1.0, deadline - time.monotonic()) if deadline is not None else _retry_delay(failures),
                )
                if deadline is not None:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                continue
            if failures:
                logger.warning(
                    "tracking events: PostgreSQL is back after %.0f s; events kept in memory are written",
                    time.monotonic() - failing_since,
                )
                failures = 0
            if self._closing.is_set() and not self._pending:
                self._disconnect()
                return

    def _write_pending(self) -> None:
        pending = self._pending
        while True:
            if not self._batch:
                count = min(len(pending), BATCH_MAX)
                if not count:
                    return
                popleft = pending.popleft
                self._batch = [popleft() for _ in range(count)]
            conn = self._connection()
            rows = self._rows(conn, self._batch)
            try:
                tracking_sql.copy_events(conn, rows)
            except (psycopg.DataError, psycopg.IntegrityError):
                # A row PostgreSQL refuses must not hold back the others: write them one by one.
                self._write_one_by_one(conn, rows)
            else:
                self.written += len(rows)
            self._batch = []

    def _write_one_by_one(self, conn: psycopg.Connection, rows: list[EventRow]) -> None:
        for row in rows:
            try:
                tracking_sql.insert_event(conn, row)
            except (psycopg.DataError, psycopg.IntegrityError) as error:
                self.rejected += 1
                logger.error(
                    "tracking events: PostgreSQL refused the event of contact %s in campaign %s (%s); skipped",
                    row[1],
                    row[0],
                    _one_line(error),
                )
            else:
                self.written += 1

    def _rows(self, conn: psycopg.Connection, batch: list[Hit]) -> list[EventRow]:
        """The batch as table rows: decoded, client address resolved, flagged."""
        trusted = self._settings.trusted_proxies
        # Hits of one batch often share their origin (a proxy, a scanner): classify each origin once.
        origins: dict[tuple, tuple[str | None, str | None, int]] = {}
        rows: list[EventRow] = []
        unflagged: dict[int, set[int]] = {}
        for one in batch:
            key = one[5:]
            found = origins.get(key)
            if found is None:
                found = origins[key] = origin(one, trusted)
            ip, user_agent, flag = found
            kind, campaign_id, contact_id, link_idx, at = one[:5]
            if flag == HUMAN:
                unflagged.setdefault(campaign_id, set()).add(contact_id)
            rows.append(
                (campaign_id, contact_id, kind, link_idx, flag, datetime.fromtimestamp(at, UTC), ip, user_agent)
            )
        if unflagged and self._prefetch:
            sent = self._send_times(conn, unflagged)
            if sent:
                prefetch = self._prefetch
                for i, row in enumerate(rows):
                    if row[4] == HUMAN:
                        sent_at = sent.get((row[0], row[1]))
                        if sent_at is not None and row[5] < sent_at + prefetch:
                            rows[i] = (*row[:4], PREFETCH, *row[5:])
        return rows

    def _send_times(self, conn: psycopg.Connection, contacts: dict[int, set[int]]) -> dict[tuple[int, int], datetime]:
        sent: dict[tuple[int, int], datetime] = {}
        for campaign_id, contact_ids in contacts.items():
            try:
                times = tracking_sql.send_times(conn, campaign_id, contact_ids)
            except psycopg.errors.UndefinedTable:
                continue  # a campaign since deleted: its events are kept, unflagged
            sent.update(((campaign_id, contact_id), at) for contact_id, at in times.items())
        return sent

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


def _retry_delay(failures: int) -> float:
    return min(RETRY_MAX_S, 0.25 * 2**failures)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
