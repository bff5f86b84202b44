"""The send loop of one line (the seed's SendCampaignBatch), knowing nothing of Dagster.

A line claims contacts from its campaign's shared pool, takes its daily quota before each call,
paces itself, sends through its provider and records every result. Several calls can be in
flight at once (sending.window, sending.flights): each is noted before it leaves; a claim's
answered calls are recorded together once its calls are all made (a failed one at once); a paced
line makes one call at a time. It ends, with its state saved, when there is nothing left, at its
quota, before a long wait (start date, pacing, provider rate limit), when paused or cancelled, or
on an error that needs a person. Sensors and the daily schedule relaunch it where it was.

Beside the loop: its setup (sending.setup), quota reservations (sending.reservations), results
recorder (sending.recorder) and what provider answers mean (sending.outcomes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import psycopg

from campaign_pipelines.errors import ValidationError
from campaign_pipelines.providers import (
    Delivery,
    OutgoingMessage,
    ProviderClient,
    ProviderError,
    deliver,
)
from campaign_pipelines.quotas import RedisQuotas
from campaign_pipelines.rendering import MessageRenderer, Tracking
from campaign_pipelines.sending.clock import Clock
from campaign_pipelines.sending.flights import Batch, Flight, Flights, call_key, render
from campaign_pipelines.sending.outcomes import (
    LineOutcome,
    LineStop,
    Progress,
    delivery_results,
    quota_reached,
    stop_after,
    unanswered_status,
)
from campaign_pipelines.sending.recorder import Records
from campaign_pipelines.sending.reservations import Reservations, day_quotas
from campaign_pipelines.sending.setup import prepare, take_over
from campaign_pipelines.sending.window import CallWindow
from campaign_pipelines.statuses import CampaignStatus, ContactStatus, LineStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.quotas import Quota

# A wait longer than this ends the step (state saved); a sensor relaunches the line on time.
MAX_WAIT_IN_STEP_S = 180.0
# Control (pause, cancel) and heartbeat are checked at least this often, waits included.
CONTROL_EVERY_S = 1.0
# Rendering errors are logged for the first few contacts; every one is in its contact's `error`.
MAX_RENDER_WARNINGS = 10


class _Lost(Exception):
    """Another run owns the line now: stop without touching its state."""


class LineSender:
    def __init__(
        self,
        conn: psycopg.Connection,
        line_id: int,
        *,
        run_id: str,
        quotas: RedisQuotas | None,
        client: ProviderClient,
        clock: Clock | None = None,
        on_progress: Progress | None = None,
        tracking: Tracking | None = None,
        results_conn: psycopg.Connection | None = None,
    ) -> None:
        """`quotas`: the Redis counters in front of PostgreSQL's quota record (None: PostgreSQL
        alone). `results_conn`, a second connection, lets results be recorded while the next
        batch is sent (faster); without it they are recorded in turn on `conn`."""
        self._conn = conn
        self._results_conn = results_conn
        self._line_id = line_id
        self._run_id = run_id
        self._quotas = quotas
        self._client = client
        self._clock = clock or Clock()
        self._on_progress = on_progress
        self._tracking = tracking
        self._last_control = 0.0

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> LineOutcome:
        started = time.monotonic()
        line = line_sql.line_by_id(self._conn, self._line_id)
        if line is None:
            raise ValidationError(f"line {self._line_id}", ["does not exist"])
        campaign = campaign_sql.campaign_by_id(self._conn, line.campaign_id)
        assert campaign is not None
        outcome = LineOutcome(line_id=line.id, status=LineStatus.SENDING)
        self._line, self._campaign, self._outcome = line, campaign, outcome
        self._reservations = Reservations(self._conn, self._quotas, outcome.warnings.append)
        self._renderer: MessageRenderer | None = None
        if not take_over(self._conn, line, self._run_id, outcome.warnings.append):
            outcome.reason = "another run is sending this line"
            return outcome
        self._records = Records(
            self._conn, self._results_conn, campaign.id, line.id, self._run_id, outcome, self._on_progress
        )
        # Calls answered with verdicts, recorded together once the batch's calls are all made: one
        # transaction for a claim of one-message calls, as for one call of a thousand.
        self._answered: list[tuple[Flight, list[Delivery]]] = []
        # The stop a failed call asks for, once its contacts are settled.
        self._stop: LineStop | None = None
        self._flights: Flights | None = None
        try:
            self._prepare()
            while True:
                self._control()
                self._wait_for_start()
                self._pace()
                batch = self._claim_batch()
                if batch is not None:
                    self._send(batch)
        except LineStop as stop:
            stop = self._land_all(stop)
            self._records.drain()
            self._records.release_leases()
            outcome.status, outcome.reason = stop.status, stop.reason
            line_sql.set_line_state(
                self._conn, line.id, self._run_id, stop.status, reason=stop.reason, next_run_at=stop.next_run_at
            )
        except _Lost:
            self._land_all(None)
            self._records.drain()
            outcome.reason = "another run took this line over"
        except BaseException:
            # Calls in flight are left as they are: noted, their contacts reserved, hence
            # `unknown` for the line's next run, as after a crash.
            self._records.drain()
            raise
        finally:
            if self._flights is not None:
                self._flights.close()
        outcome.seconds = time.monotonic() - started
        outcome.undefined_variables = self._renderer.undefined_variables if self._renderer else 0
        return outcome

    def _prepare(self) -> None:
        setup = prepare(self._conn, self._line, self._campaign, self._tracking)
        self._provider, self._api_key, self._sender = setup.provider, setup.api_key, setup.sender
        self._renderer, self._gap = setup.renderer, setup.gap
        self._batch_size, self._claim_size = setup.batch_size, setup.claim_size
        self._last_sent = self._line.last_sent_at
        self._window = CallWindow(setup.calls_in_flight)
        self._flights = Flights(self._window, f"line-{self._line_id}-call")
        self._busy_from = time.monotonic()

    # --- control, waits and pacing -----------------------------------------------------

    def _control(self, *, force: bool = False) -> None:
        """Heartbeat, and stop at once when the campaign is paused or cancelled."""
        now = time.monotonic()
        if not force and now - self._last_control < CONTROL_EVERY_S:
            return
        self._last_control = now
        status = line_sql.heartbeat(self._conn, self._line_id, self._run_id)
        if status == line_sql.LOST:
            # Another run took the line over (this one was thought dead): leave it to that run.
            raise _Lost()
        if status == CampaignStatus.PAUSED:
            raise LineStop(LineStatus.PAUSED, "paused by an operator")
        if status == CampaignStatus.CANCELLED:
            raise LineStop(LineStatus.CANCELLED, "cancelled by an operator")

    def _wait_until(self, moment: datetime, why: str) -> None:
        remaining = (moment - self._clock.now()).total_seconds()
        if remaining <= 0:
            return
        if remaining > MAX_WAIT_IN_STEP_S:
            raise LineStop(
                LineStatus.WAITING, f"{why} until {moment.isoformat(timespec='seconds')}", next_run_at=moment
            )
        while remaining > 0:
            self._clock.sleep(min(remaining, CONTROL_EVERY_S))
            self._control()
            remaining = (moment - self._clock.now()).total_seconds()

    def _wait_for_start(self) -> None:
        if self._line.scheduled_at is not None:
            self._wait_until(self._line.scheduled_at, "waiting for the start date")

    def _pace(self) -> None:
        if self._gap:
            self._land_every_call()
        if self._gap and self._last_sent is not None:
            if not send_sql.has_pending(self._conn, self._campaign.id):
                raise LineStop(LineStatus.DONE, "no contact left to send")
            self._wait_until(self._last_sent + self._gap, "pacing")

    # --- one batch ---------------------------------------------------------------------

    def _claim_batch(self) -> Batch | None:
        """Quota, claim and render the next contacts; None when none is left to call for
        (all suppressed, or failed to render: recorded)."""
        quotas, next_day = day_quotas(self._line, self._clock.now())
        granted, full, give_back = self._reservations.reserve(quotas, self._claim_size)
        if full is not None:
            raise quota_reached(full, next_day, self._line.server_timezone)
        claim = send_sql.claim(self._conn, self._campaign.id, self._line_id, self._run_id, granted, quotas)
        if claim.lost:
            give_back(granted)
            raise _Lost()
        sendable = [c for c in claim.contacts if c.send_status != ContactStatus.SUPPRESSED]
        give_back(granted - len(sendable))
        if claim.room is not None and claim.room < granted:
            self._reservations.raise_to_recorded(quotas)
        if not claim.contacts:
            if claim.room == 0 and claim.tightest is not None:
                raise quota_reached(claim.tightest, next_day, self._line.server_timezone)
            raise LineStop(LineStatus.DONE, "no contact left to send")
        suppressed = len(claim.contacts) - len(sendable)
        assert self._renderer is not None
        messages, ids, unrendered, reasons = render(self._renderer, self._campaign.id, sendable)
        if unrendered:
            self._fail_unrendered(unrendered, reasons, quotas, give_back)
        if suppressed:
            self._records.record([], suppressed=suppressed)
        if not ids:
            # Every contact was suppressed (no lease) or failed to render (recorded): the lease is over.
            if claim.lease is not None:
                send_sql.release_lease(self._conn, self._campaign.id, self._line_id, self._run_id, claim.lease)
            return None
        assert claim.lease is not None
        batch = Batch(messages, ids, quotas, give_back, claim.lease)
        self._records.opened(batch)
        return batch

    def _fail_unrendered(
        self, ids: list[int], reasons: list[str], quotas: list[Quota], give_back: Callable[[int], None]
    ) -> None:
        failed = send_sql.fail_unsent(self._conn, self._campaign.id, self._line_id, self._run_id, ids, reasons, quotas)
        give_back(failed)
        self._outcome.failed += failed
        if len(self._outcome.warnings) < MAX_RENDER_WARNINGS:
            self._outcome.warnings.append(f"contact {ids[0]}: {reasons[0]}")

    # --- calls in flight ----------------------------------------------------------------

    def _send(self, batch: Batch) -> None:
        """Make the batch's calls, `batch_size` messages each (one, on a server that takes one
        message per call), with up to the window's number in flight; the contacts no call was
        made for go back to the pool when the line stops before (`Records.release_leases`)."""
        for start in range(0, len(batch.ids), self._batch_size):
            self._make_room()
            if self._stop is not None:
                raise self._stop
            ids = batch.ids[start : start + self._batch_size]
            call_id = send_sql.mark_in_flight(self._conn, self._line_id, self._run_id, ids)
            if call_id is None:
                raise _Lost()
            messages = batch.messages[start : start + len(ids)]
            # The loop's own work since its last call (claim, render, records), waits for room aside.
            now = time.monotonic()
            self._window.prepared(now - self._busy_from)
            self._busy_from = now
            self._flights.start(batch, messages, ids, call_id, self._deliver)
            self._outcome.most_in_flight = self._flights.most
            self._land(block=False)
        self._record_answered()

    def _deliver(self, messages: list[OutgoingMessage], ids: list[int]) -> list[Delivery]:
        """One call, in a thread of the pool; its database work is left to the loop."""
        key = call_key(self._campaign.id, ids) if self._provider.idempotent else None
        return deliver(
            self._client,
            self._provider,
            url=self._line.url,
            api_key=self._api_key,
            sender=self._sender,
            messages=messages,
            idempotency_key=key,
            on_wait=self._window.provider_waits,
            sleep=self._clock.sleep,
        )

    def _make_room(self) -> None:
        """Wait until the window has room for one more call, recording the calls answered
        meanwhile; heartbeats and pauses are seen every second."""
        while len(self._flights) >= self._window.size():
            waited_from = time.monotonic()
            self._land(block=True, meanwhile=self._control)
            self._busy_from += time.monotonic() - waited_from

    def _land(self, *, block: bool, meanwhile: Callable[[], object] | None = None) -> None:
        """Record the calls answered by now; `block`: wait for one at least, running `meanwhile`
        every second."""
        assert self._flights is not None
        for flight in self._flights.answered(wait_s=CONTROL_EVERY_S if block else None, meanwhile=meanwhile):
            self._settle(flight)

    def _land_every_call(self) -> None:
        """Record every call in flight (heartbeating while they are answered); then the stop a
        failed one asked for, if any."""
        while self._flights:
            self._land(block=True, meanwhile=self._heartbeat)
        self._record_answered()
        if self._stop is not None:
            raise self._stop

    def _land_all(self, stop: LineStop | None) -> LineStop | None:
        """The line is stopping for `stop`: record every call in flight first. A failed call's
        stop replaces `stop`, but for an operator's pause or cancel."""
        try:
            self._land_every_call()
        except LineStop as failed:
            if stop is None or stop.status not in (LineStatus.PAUSED, LineStatus.CANCELLED):
                return failed
        return stop

    def _heartbeat(self) -> None:
        # Only a heartbeat: a pause while calls are answered is honoured once they are recorded.
        line_sql.heartbeat(self._conn, self._line_id, self._run_id)

    def _settle(self, flight: Flight) -> None:
        """Record what a failed call did at once; keep an answered one's verdicts for `_record_answered`."""
        try:
            deliveries = flight.answer.result()
        except ProviderError as error:
            self._record_failed_call(flight, error)
        else:
            self._answered.append((flight, deliveries))

    def _record_answered(self) -> None:
        if self._answered:
            answered, self._answered = self._answered, []
            results = delivery_results(
                [m for flight, _ in answered for m in flight.messages],
                [d for _, deliveries in answered for d in deliveries],
            )
            self._records.record(
                [i for flight, _ in answered for i in flight.ids],
                results,
                calls=[flight.call_id for flight, _ in answered],
                batches=[(flight.batch, len(flight.ids)) for flight, _ in answered],
            )
            self._last_sent = self._clock.now()

    def _record_failed_call(self, flight: Flight, error: ProviderError) -> None:
        """Record what the provider decided before failing and, in the same transaction, what
        the failure makes of the rest; contacts nothing was sent for stay leased, given back
        when the line stops, which it does."""
        decided = {d.send_id for d in error.done}
        taken: list[OutgoingMessage] = []
        ids: list[int] = []
        rest: list[int] = []
        for message, contact_id in zip(flight.messages, flight.ids, strict=True):
            if message.send_id in decided:
                taken.append(message)
                ids.append(contact_id)
            else:
                rest.append(contact_id)
        results = delivery_results(taken, error.done)
        status = unanswered_status(error)
        if status is not None:
            results.extend(status, str(error), len(rest))
            ids += rest
        elif self._stop is None:
            self._stop = stop_after(error, self._clock.now())
        self._records.record(ids, results, calls=[flight.call_id], batches=[(flight.batch, len(ids))])
        if error.done:
            self._last_sent = self._clock.now()
