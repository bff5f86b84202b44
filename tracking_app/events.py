"""Opens and clicks: kept in memory as they come, written to PostgreSQL in batches by a thread.

The routes call `EventWriter.record` with a `Hit`: appending to a deque is all the request path
pays. The writer thread, with its own psycopg connection, wakes every `flush_interval_s` (or as soon
as `flush_size` hits are waiting), flags each hit (flags.py, plus prefetch by send time, looked up
here, off the event loop: see `_send_times`) and writes the batch with one COPY. If PostgreSQL is
down, hits are kept (up to `max_buffered`) and retried; `close()`, called by the lifespan when
uvicorn stops, writes everything left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from starlette.types import Scope

from campaign_pipelines.store import tracking as tracking_sql
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
        self._prefetch_s = settings.prefetch_s
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
        if len(pending) >= self._flush_size and not self._wake.is_set():
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
            lines = self._copy_lines(conn, self._batch)
            try:
                tracking_sql.copy_events(conn, "".join(lines).encode())
            except (psycopg.DataError, psycopg.IntegrityError):
                # A row PostgreSQL refuses must not hold back the others: write them one by one.
                self._write_one_by_one(conn, lines)
            else:
                self.written += len(lines)
            self._batch = []

    def _write_one_by_one(self, conn: psycopg.Connection, lines: list[str]) -> None:
        for line in lines:
            try:
                tracking_sql.copy_events(conn, line.encode())
            except (psycopg.DataError, psycopg.IntegrityError) as error:
                self.rejected += 1
                campaign_id, contact_id = line.split("\t", 2)[:2]
                logger.error(
                    "tracking events: PostgreSQL refused the event of contact %s in campaign %s (%s); skipped",
                    contact_id,
                    campaign_id,
                    _one_line(error),
                )
            else:
                self.written += 1

    def _copy_lines(self, conn: psycopg.Connection, batch: list[Hit]) -> list[str]:
        """The batch in COPY text format: client address resolved, user agent cut, every hit flagged."""
        trusted = self._settings.trusted_proxies
        # Hits of one batch often share their origin (a proxy, a scanner, a browser): each is
        # classified and escaped once.
        origins: dict[tuple, tuple[str, str, int]] = {}
        classified: list[tuple[str, str, int]] = []
        # Campaigns with hits that nothing flagged, and the earliest such hit of each.
        unflagged: dict[int, float] = {}
        for one in batch:
            key = one[5:]
            found = origins.get(key)
            if found is None:
                ip, user_agent, flag = origin(one, trusted)
                found = origins[key] = (_copy_text(ip), _copy_text(user_agent), flag)
            classified.append(found)
            if found[2] == HUMAN:
                campaign_id, at = one[1], one[4]
                if at < unflagged.get(campaign_id, at + 1):
                    unflagged[campaign_id] = at
        sent = self._send_times(conn, batch, classified, unflagged) if unflagged and self._prefetch_s else {}
        prefetch_s = self._prefetch_s
        timestamps = _Timestamps()
        lines = []
        for one, (ip, user_agent, flag) in zip(batch, classified, strict=True):
            kind, campaign_id, contact_id, link_idx, at = one[:5]
            if flag == HUMAN and sent:
                sent_at = sent.get((campaign_id, contact_id))
                if sent_at is not None and at < sent_at + prefetch_s:
                    flag = PREFETCH
            link = "\\N" if link_idx is None else link_idx
            lines.append(
                f"{campaign_id}\t{contact_id}\t{kind}\t{link}\t{flag}\t{timestamps.text(at)}\t{ip}\t{user_agent}\n"
            )
        return lines

    def _send_times(
        self,
        conn: psycopg.Connection,
        batch: list[Hit],
        classified: list[tuple[str, str, int]],
        unflagged: dict[int, float],
    ) -> dict[tuple[int, int], float]:
        """When the contacts of unflagged hits were sent (epoch seconds), for campaigns sending lately.

        A campaign whose lines last sent more than `prefetch_s` before its earliest hit here cannot
        have sent any of these contacts that recently: one look-up in the small line table spares
        the per-contact look-up for every campaign that is not sending right now.
        """
        since = datetime.fromtimestamp(min(unflagged.values()) - self._prefetch_s, UTC)
        sending = tracking_sql.campaigns_sending_since(conn, unflagged, since)
        if not sending:
            return {}
        contacts: dict[int, set[int]] = {campaign_id: set() for campaign_id in sending}
        for one, (_, _, flag) in zip(batch, classified, strict=True):
            if flag == HUMAN and one[1] in contacts:
                contacts[one[1]].add(one[2])
        sent: dict[tuple[int, int], float] = {}
        for campaign_id, contact_ids in contacts.items():
            try:
                times = tracking_sql.send_times(conn, campaign_id, contact_ids)
            except (psycopg.ProgrammingError, psycopg.DataError) as error:
                # A campaign since deleted (no contact table): its events are kept, unflagged.
                logger.warning("tracking events: send times of campaign %s unknown (%s)", campaign_id, _one_line(error))
                continue
            sent.update(((campaign_id, contact_id), at.timestamp()) for contact_id, at in times.items())
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


class _Timestamps:
    """COPY text for `time.time()` values: the date and time of each second is formatted once."""

    def __init__(self) -> None:
        self._seconds: dict[int, str] = {}

    def text(self, at: float) -> str:
        second = int(at)
        prefix = self._seconds.get(second)
        if prefix is None:
            prefix = self._seconds[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return f"{prefix}.{int((at - second) * 1_000_000):06d}+00"


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str | None) -> str:
    """A value as a field of COPY's text format (NULL is \\N)."""
    return "\\N" if value is None else value.translate(_COPY_ESCAPES)


def _retry_delay(failures: int) -> float:
    return min(RETRY_MAX_S, 0.25 * 2**failures)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
