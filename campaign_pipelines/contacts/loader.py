"""The contact import: stream files, normalise, merge duplicates, bulk-load into PostgreSQL.

Called by the `campaign_contacts` asset and by the import benchmark. Memory stays flat
whatever the file size: records flow through bounded per-shard batches.

Speed comes from overlapping Python and PostgreSQL work: this thread parses while
`WRITERS` threads, each with its own connection, load the batches. Contacts are sharded by
email, so one email always goes through the same writer in file order and the last record
wins. A batch of emails not yet in the table is copied straight into it (all or nothing);
one holding a known email is copied into a temporary staging table and merged with one
set-based upsert, which costs PostgreSQL about three times as much: with two cores, the two
halves of such a batch are merged at once on two connections.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import psycopg

from campaign_pipelines.contacts.reader import iter_records
from campaign_pipelines.contacts.records import sample_of, to_contact
from campaign_pipelines.store import contacts as contact_sql

BATCH_SIZE = 25_000
# This thread takes one core parsing; PostgreSQL backends get the rest (measured on 2 cores,
# 1M contacts: 5.95-6.57 s with one writer, 6.03-6.26 s with two).
WRITERS = min(4, max(1, (os.cpu_count() or 2) - 1))
# Merged batches are split between two connections when there is a core for each.
SPLIT_MERGES = (os.cpu_count() or 1) >= 2
SAMPLES_PER_REASON = 10
# Batches waiting per writer: bounds memory while keeping the writers busy.
_QUEUE_DEPTH = 2
_ROWS_PER_CHUNK = 256
# After each socket write a writer waits for the GIL while this thread parses in C (ijson,
# orjson); by default that is a whole 5 ms switch interval, with PostgreSQL idle. 1M
# contacts, interleaved runs: median 7.5 s by default, 6.6 s at 1 ms, no better below.
_SWITCH_INTERVAL_S = 0.001
# Parsed records are acyclic and freed by reference counting, but each orjson run keeps ~1000
# of them alive at once, which starts the cyclic collector every 700 allocations, and a full
# collection (all of a Dagster process's objects) every few hundred runs. A gen-0 threshold
# of 100,000 lets it run only for garbage that really piles up (1M contacts in a process
# holding Dagster's definitions: 5.3 s -> 3.6 s of parsing).
_GC_GEN0_THRESHOLD = 100_000
# At most this many batches in a row are merged before copying straight in is tried again.
_MAX_MERGE_RUN = 32

# Opens an autocommit connection: each batch's upsert commits on its own.
Connect = Callable[[], psycopg.Connection]


@dataclass
class ImportReport:
    files: list[str]
    records_read: int = 0
    valid_records: int = 0
    new_contacts: int = 0
    updated_contacts: int = 0
    invalid: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    nbre_contacts: int = 0
    blacklisted_contacts: int = 0
    duration_s: float = 0.0

    @property
    def duplicates_merged(self) -> int:
        """Valid records that did not add a contact: merged into one seen before."""
        return self.valid_records - self.new_contacts

    @property
    def contacts_per_s(self) -> float:
        return self.records_read / self.duration_s if self.duration_s else 0.0


def _copy_chunks(rows: Iterable[bytes]) -> Iterator[bytes]:
    """Rows in small chunks: big buffers would fragment the heap across threads."""
    rows = iter(rows)
    while chunk := list(islice(rows, _ROWS_PER_CHUNK)):
        yield b"".join(chunk)


@contextmanager
def _interpreter_tuned_for_loading() -> Iterator[None]:
    """A short GIL switch interval and a rare cyclic collector, both given back after."""
    interval = sys.getswitchinterval()
    thresholds = gc.get_threshold()
    sys.setswitchinterval(min(interval, _SWITCH_INTERVAL_S))
    gc.set_threshold(max(thresholds[0], _GC_GEN0_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)


class _HalfMerger:
    """A second connection merging one half of each merged batch while the writer merges the
    other: files that overlap (the seed's VIP list) are mostly merges."""

    def __init__(self, connect: Connect, campaign_id: int) -> None:
        self._connect = connect
        self._campaign_id = campaign_id
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._conn: psycopg.Connection | None = None

    def merge(self, rows: Sequence[bytes]) -> Future[tuple[int, int]]:
        return self._pool.submit(self._merge, rows)

    def _merge(self, rows: Sequence[bytes]) -> tuple[int, int]:
        if self._conn is None:
            self._conn = self._connect()
            contact_sql.create_staging(self._conn)
        return _merge(self._conn, self._campaign_id, rows)

    def close(self) -> None:
        self._pool.shutdown()
        if self._conn is not None:
            self._conn.close()


def _merge(conn: psycopg.Connection, campaign_id: int, rows: Iterable[bytes]) -> tuple[int, int]:
    contact_sql.copy_into_staging(conn, _copy_chunks(rows))
    return contact_sql.upsert_from_staging(conn, campaign_id)


class _Writer(threading.Thread):
    """Loads the batches of one shard, in order, through its own connection."""

    def __init__(self, connect: Connect, campaign_id: int, *, split_merges: bool) -> None:
        super().__init__(daemon=True)
        self._connect = connect
        self._campaign_id = campaign_id
        self._split_merges = split_merges
        self.batches: queue.Queue[dict[str, bytes] | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self.inserted = 0
        self.updated = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        helper = _HalfMerger(self._connect, self._campaign_id) if self._split_merges else None
        try:
            with self._connect() as conn:
                contact_sql.create_staging(conn)
                # Batches of new emails are copied straight into the contact table; once one
                # holds a known email, the next batches are merged through staging, for
                # twice as many batches after each further miss.
                merge_next, backoff = 0, 1
                while (batch := self.batches.get()) is not None:
                    if merge_next == 0:
                        if contact_sql.copy_new_contacts(conn, self._campaign_id, _copy_chunks(batch.values())):
                            self.inserted += len(batch)
                            backoff = 1
                            continue
                        merge_next, backoff = backoff, min(2 * backoff, _MAX_MERGE_RUN)
                    merge_next -= 1
                    inserted, updated = self._merge(conn, batch, helper)
                    self.inserted += inserted
                    self.updated += updated
        except BaseException as error:  # handed to the parsing thread, which raises it
            self.error = error
            while self.batches.get() is not None:  # unblock the producer until it stops
                pass
        finally:
            if helper is not None:
                helper.close()

    def _merge(self, conn: psycopg.Connection, batch: dict[str, bytes], helper: _HalfMerger | None) -> tuple[int, int]:
        if helper is None:
            return _merge(conn, self._campaign_id, batch.values())
        # A batch holds each email once: its two halves can be merged at the same time. Every
        # other row, not first and second half: a file's new contacts and its known ones (three
        # times as costly to merge) often come in runs, which would leave one half waiting.
        rows = list(batch.values())
        other = helper.merge(rows[1::2])
        try:
            inserted, updated = _merge(conn, self._campaign_id, rows[::2])
        finally:
            # Always waited for: an error of the other half is raised too (chained to ours).
            other_inserted, other_updated = other.result()
        return inserted + other_inserted, updated + other_updated

    def put(self, batch: dict[str, bytes] | None) -> None:
        if self.error is not None:
            raise self.error
        self.batches.put(batch)


def import_contact_files(
    connect: Connect,
    campaign_id: int,
    paths: Sequence[Path],
    *,
    batch_size: int = BATCH_SIZE,
    writers: int = WRITERS,
    split_merges: bool = SPLIT_MERGES,
    on_progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import every file into the campaign's contact table; returns what happened.

    Raises `ContactFileError` on a file that is not valid JSON: batches already loaded stay
    (they are correct), and importing again after the fix completes with no duplicates.
    """
    started = time.perf_counter()
    report = ImportReport(files=[p.name for p in paths])
    with connect() as conn:
        # The writers count the contacts they add: counting the table afterwards would read
        # every row (and set its hint bits) just for a number already known.
        contacts_before = contact_sql.create_contact_table(conn, campaign_id)

    shards = [_Writer(connect, campaign_id, split_merges=split_merges) for _ in range(writers)]
    for writer in shards:
        writer.start()
    pending: list[dict[str, bytes]] = [{} for _ in shards]
    invalid: defaultdict[str, int] = defaultdict(int)
    samples: defaultdict[str, list[str]] = defaultdict(list)
    read = 0
    valid = 0
    with _interpreter_tuned_for_loading():
        try:
            for path in paths:
                for position, record in enumerate(iter_records(path)):
                    read += 1
                    email, value = to_contact(record)
                    if email is None:
                        invalid[value] += 1
                        if len(samples[value]) < SAMPLES_PER_REASON:
                            samples[value].append(f"{path.name} #{position}: {sample_of(record, value)}")
                        continue
                    valid += 1
                    shard = hash(email) % writers
                    batch = pending[shard]
                    # One COPY text row. Validated emails hold no character COPY treats
                    # specially; the JSON may hold backslashes. Inline (once per record); it
                    # also right-sizes orjson's over-allocated output.
                    batch[email] = b"%s\t%s\n" % (email.encode(), value.replace(b"\\", b"\\\\"))
                    if len(batch) >= batch_size:
                        shards[shard].put(batch)
                        pending[shard] = {}
                        if on_progress is not None:
                            report.records_read, report.valid_records = read, valid
                            on_progress(report)
            for writer, batch in zip(shards, pending, strict=True):
                if batch:
                    writer.put(batch)
        finally:
            for writer in shards:
                if writer.is_alive():
                    writer.batches.put(None)
            for writer in shards:
                writer.join()
    for writer in shards:
        if writer.error is not None:
            raise writer.error

    report.records_read = read
    report.valid_records = valid
    report.new_contacts = sum(w.inserted for w in shards)
    report.updated_contacts = sum(w.updated for w in shards)
    report.invalid = dict(invalid)
    report.samples = dict(samples)
    report.nbre_contacts = contacts_before + report.new_contacts
    with connect() as conn:
        report.blacklisted_contacts = contact_sql.count_blacklisted(conn, campaign_id)
    report.duration_s = time.perf_counter() - started
    return report
