"""The results recorder of a send loop: a thread writing finished batches on its own connection
while the loop sends the next one (sending.line)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import psycopg


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
