"""What a line's send loop (sending.line) writes about its contacts: their results, the leases
they settle, and what goes back to the pool when the line stops; with a second connection, on a
thread of its own while the loop sends the next calls."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

import psycopg

from campaign_pipelines.sending.flights import Batch
from campaign_pipelines.sending.outcomes import LineOutcome, Progress, Results
from campaign_pipelines.store import sending as send_sql


class Recorder(threading.Thread):
    """Records finished batches on a second connection while the loop sends the next one.

    A batch sent but not yet recorded when the process dies stays reserved, hence `unknown`:
    the same guarantee as a batch whose answer never came.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        super().__init__(daemon=True, name="results-recorder")
        self._conn = conn
        # One batch recording while the next is sent; a third waits.
        self._jobs: queue.Queue[Callable[[psycopg.Connection], None] | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None

    def run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self.error is None:
                try:
                    job(self._conn)
                except BaseException as error:  # raised again in the sending thread
                    self.error = error

    def submit(self, job: Callable[[psycopg.Connection], None]) -> None:
        self._raise()
        self._jobs.put(job)

    def drain(self) -> None:
        """Wait until everything submitted is recorded."""
        self._jobs.put(None)
        self.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


class Records:
    def __init__(
        self,
        conn: psycopg.Connection,
        results_conn: psycopg.Connection | None,
        campaign_id: int,
        line_id: int,
        run_id: str,
        outcome: LineOutcome,
        on_progress: Progress | None,
    ) -> None:
        """Results are recorded on `results_conn` by a `Recorder` thread, else in turn on `conn`;
        each is added to `outcome`, then told to `on_progress`."""
        self._conn = conn
        self._recorder = Recorder(results_conn) if results_conn is not None else None
        if self._recorder is not None:
            self._recorder.start()
        self._campaign_id, self._line_id, self._run_id = campaign_id, line_id, run_id
        self._outcome = outcome
        self._on_progress = on_progress
        # Batches whose lease is open: some of their contacts have no outcome recorded yet.
        self._open: list[Batch] = []

    def opened(self, batch: Batch) -> None:
        self._open.append(batch)

    def record(
        self,
        ids: list[int],
        results: Results | None = None,
        suppressed: int = 0,
        *,
        calls: Sequence[int] = (),
        batches: Sequence[tuple[Batch, int]] = (),
    ) -> None:
        """Record the results of `ids` (in order), `suppressed` more skipped, closing the in-flight
        `calls` they answer; `batches`: how many of `ids` each batch had, to end the leases
        whose last contacts these are, in the same transaction."""
        results = results or Results([], [], [])
        leases = self._closing(batches)

        def record(conn: psycopg.Connection) -> None:
            send_sql.record_results(
                conn,
                self._campaign_id,
                self._line_id,
                self._run_id,
                ids=ids,
                statuses=results.statuses,
                message_ids=results.message_ids,
                errors=results.errors,
                suppressed=suppressed,
                calls=calls,
                leases=leases,
            )

        if self._recorder is not None:
            self._recorder.submit(record)
        else:
            record(self._conn)
        self._outcome.count(results.statuses, suppressed)
        if self._on_progress is not None:
            self._on_progress(self._outcome)

    def _closing(self, batches: Sequence[tuple[Batch, int]]) -> list[int]:
        closing = []
        for batch, recorded in batches:
            batch.unsettled -= recorded
            if batch.unsettled == 0:
                closing.append(batch.lease)
                self._open.remove(batch)
        return closing

    def drain(self) -> None:
        """Wait until every result submitted is recorded."""
        if self._recorder is not None and self._recorder.is_alive():
            self._recorder.drain()

    def release_leases(self) -> None:
        """The line stops, its calls all recorded (`drain` first): the contacts of its leases no
        call was made for (or whose call sent nothing) go back to the pool, their sends back to
        the quotas."""
        for batch in self._open:
            released = send_sql.release_lease(
                self._conn, self._campaign_id, self._line_id, self._run_id, batch.lease, batch.quotas
            )
            batch.give_back(released)
        self._open = []
