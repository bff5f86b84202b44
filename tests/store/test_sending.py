"""Sending SQL: every write of a run is fenced by its owning the line."""

from __future__ import annotations

from campaign_pipelines.sending import campaign as lifecycle
from campaign_pipelines.statuses import ContactStatus, LineStatus
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import recovery as recovery_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.connection import connect
from tests.sending.fixtures import SENDGRID
from tests.support import set_outcomes


def test_a_run_that_lost_its_line_may_not_call_nor_change_what_its_new_owner_holds(db, make_campaign) -> None:
    setup = make_campaign(20, [SENDGRID])
    (line_id,) = setup.line_ids
    assert line_sql.claim_line(db, line_id, "first", stale_after_s=120)
    first = send_sql.claim(db, setup.campaign_id, line_id, "first", 10)
    claimed = [c.id for c in first.contacts]
    assert send_sql.mark_in_flight(db, line_id, "first", claimed[:5]) is not None
    # The first run freezes; a second takes the line over, recovers it and claims again.
    db.execute("UPDATE campaign_channels SET heartbeat_at = now() - interval '10 minutes' WHERE id = %s", (line_id,))
    assert line_sql.claim_line(db, line_id, "second", stale_after_s=120)
    assert recovery_sql.recover_line(db, setup.campaign_id, line_id, "second") == (5, 5)
    second = [c.id for c in send_sql.claim(db, setup.campaign_id, line_id, "second", 10).contacts]
    assert set(claimed[5:]) <= set(second)

    # The first run wakes up: it may not start a call, and whatever else it tries leaves the
    # second run's contacts alone.
    assert send_sql.mark_in_flight(db, line_id, "first", claimed[5:]) is None
    assert first.lease is not None
    assert send_sql.release_lease(db, setup.campaign_id, line_id, "first", first.lease) == 0
    assert send_sql.fail_unsent(db, setup.campaign_id, line_id, "first", claimed[5:], ["x"] * 5) == 0
    send_sql.record_results(
        db, setup.campaign_id, line_id, "first", ids=second, statuses=[ContactStatus.SENT] * 10,
        message_ids=[None] * 10, errors=[None] * 10,
    )  # fmt: skip
    assert send_sql.claim(db, setup.campaign_id, line_id, "first", 10).lost
    line_sql.set_line_state(db, line_id, "first", "done")

    assert send_sql.status_counts(db, setup.campaign_id) == {
        ContactStatus.UNKNOWN: 5,
        ContactStatus.RESERVED: 10,
        ContactStatus.PENDING: 5,
    }
    line = line_sql.line_by_id(db, line_id)
    assert line is not None and (line.status, line.run_id, line.sent_count) == ("sending", "second", 0)


def _unknown(db, campaign_id: int, line_id: int, run_id: str, ids: list[int], call: int) -> None:
    send_sql.record_results(
        db, campaign_id, line_id, run_id, ids=ids, statuses=[ContactStatus.UNKNOWN] * len(ids),
        message_ids=[None] * len(ids), errors=["ambiguous"] * len(ids), calls=[call],
    )  # fmt: skip


def _claim_everything(db, campaign_id: int, line_id: int, run_id: str) -> list[int]:
    claimed = []
    while contacts := send_sql.claim(db, campaign_id, line_id, run_id, 7).contacts:
        claimed += [c.id for c in contacts]
    return claimed


def _lease_with_an_unknown_call(db, make_campaign):
    """A line's lease of 10 contacts of 20 whose first call (5 contacts) was ambiguous, the other
    5 not called yet: (setup, line id, the claim, its contact ids)."""
    setup = make_campaign(20, [SENDGRID])
    (line_id,) = setup.line_ids
    assert line_sql.claim_line(db, line_id, "run", stale_after_s=120)
    first = send_sql.claim(db, setup.campaign_id, line_id, "run", 10)
    claimed = [c.id for c in first.contacts]
    call = send_sql.mark_in_flight(db, line_id, "run", claimed[:5])
    assert call is not None
    _unknown(db, setup.campaign_id, line_id, "run", claimed[:5], call)
    return setup, line_id, first, claimed


def test_resending_unknown_contacts_of_a_lease_still_open_sends_each_once_more(db, make_campaign) -> None:
    setup, line_id, first, claimed = _lease_with_an_unknown_call(db, make_campaign)

    # An operator resends the unknown ones while the line runs: the line claims them again.
    assert recovery_sql.resend_unknown(db, setup.campaign_id) == 5
    again = send_sql.claim(db, setup.campaign_id, line_id, "run", 5)
    assert [c.id for c in again.contacts] == claimed[:5]
    # The line stops: the first lease gives back only the contacts no call was made for.
    assert first.lease is not None
    assert send_sql.release_lease(db, setup.campaign_id, line_id, "run", first.lease) == 5

    rest = _claim_everything(db, setup.campaign_id, line_id, "run")
    assert sorted(rest) == sorted(set(range(1, 21)) - set(claimed[:5]))


def test_unknown_contacts_resent_while_their_lease_is_open_are_in_the_pool_once(db, make_campaign) -> None:
    setup, line_id, first, claimed = _lease_with_an_unknown_call(db, make_campaign)

    assert recovery_sql.resend_unknown(db, setup.campaign_id) == 5
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.RESERVED: 5, ContactStatus.PENDING: 15}
    # The line stops before claiming them again: its lease gives back the contacts no call was made for.
    assert first.lease is not None
    assert send_sql.release_lease(db, setup.campaign_id, line_id, "run", first.lease) == 5

    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.PENDING: 20}
    assert sorted(_claim_everything(db, setup.campaign_id, line_id, "run")) == list(range(1, 21))


def test_resending_unknown_contacts_the_cursor_has_not_reached_sends_each_once(db, make_campaign) -> None:
    # A campaign migrated mid-send (0010): its unknown contacts are above a cursor still at 0.
    setup = make_campaign(20, [SENDGRID])
    (line_id,) = setup.line_ids
    emails = ["user1@example.com", "user2@example.com"]
    unknown = set_outcomes(db, setup.campaign_id, ContactStatus.UNKNOWN, emails=emails)
    assert line_sql.claim_line(db, line_id, "run", stale_after_s=120)

    assert recovery_sql.resend_unknown(db, setup.campaign_id) == 2
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.PENDING: 20}

    claimed = _claim_everything(db, setup.campaign_id, line_id, "run")
    assert sorted(claimed) == list(range(1, 21)) and set(unknown) <= set(claimed)


class _Interleaved:
    """A connection on which `meanwhile` runs (on another connection) after each statement, as a
    concurrent run's transaction would commit between two statements."""

    def __init__(self, conn, meanwhile) -> None:
        self._conn, self._meanwhile = conn, meanwhile

    def execute(self, *args, **kwargs):
        cursor = self._conn.execute(*args, **kwargs)
        rows = cursor.fetchall()
        self._meanwhile()
        return _Fetched(rows)


class _Fetched:
    def __init__(self, rows) -> None:
        self._rows = rows

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def __iter__(self):
        return iter(self._rows)


def test_a_campaign_is_unfinished_whatever_a_line_claims_or_gives_back_meanwhile(
    db, database_url, make_campaign
) -> None:
    setup = make_campaign(10, [SENDGRID])
    (line_id,) = setup.line_ids
    assert line_sql.claim_line(db, line_id, "run", stale_after_s=120)
    leases: list[int | None] = []

    def claim_the_last_ones() -> None:
        if not leases:
            with connect(database_url) as other:
                leases.append(send_sql.claim(other, setup.campaign_id, line_id, "run", 10).lease)

    # A line claims the last contacts while the campaign's end is decided: they are leased.
    assert send_sql.has_unfinished(_Interleaved(db, claim_the_last_ones), setup.campaign_id)
    (lease,) = leases
    assert lease is not None

    def give_them_back() -> None:
        if leases:
            with connect(database_url) as other:
                send_sql.release_lease(other, setup.campaign_id, line_id, "run", leases.pop())

    # The line stops and gives them back meanwhile: they are to send again.
    assert send_sql.has_unfinished(_Interleaved(db, give_them_back), setup.campaign_id)
    assert not leases


def test_send_states_are_counted_as_of_one_moment_while_a_line_records(db, database_url, make_campaign) -> None:
    setup = make_campaign(10, [SENDGRID])
    (line_id,) = setup.line_ids
    assert line_sql.claim_line(db, line_id, "run", stale_after_s=120)
    claim = send_sql.claim(db, setup.campaign_id, line_id, "run", 5)
    assert claim.lease is not None
    leased = [c.id for c in claim.contacts]
    recorded: list[int] = []

    def record_them() -> None:
        if not recorded:
            recorded.extend(leased)
            with connect(database_url) as other:
                send_sql.record_results(
                    other, setup.campaign_id, line_id, "run", ids=leased, statuses=[ContactStatus.SENT] * 5,
                    message_ids=[None] * 5, errors=[None] * 5, leases=[claim.lease],
                )  # fmt: skip

    counts = send_sql.status_counts(_Interleaved(db, record_them), setup.campaign_id)

    assert recorded
    assert counts in (
        {ContactStatus.RESERVED: 5, ContactStatus.PENDING: 5},
        {ContactStatus.SENT: 5, ContactStatus.PENDING: 5},
    )


def _finished_line_after_another_gives_back(db, make_campaign, *, cancel: bool) -> str:
    setup = make_campaign(300, [SENDGRID, {**SENDGRID, "sender_email": "promo@mondomaine.com"}])
    stopping, finished = setup.line_ids
    assert line_sql.claim_line(db, stopping, "run", stale_after_s=120)
    lease = send_sql.claim(db, setup.campaign_id, stopping, "run", 10).lease
    assert line_sql.claim_line(db, finished, "other", stale_after_s=120)
    line_sql.set_line_state(db, finished, "other", LineStatus.DONE)
    if cancel:
        lifecycle.control(db, setup.campaign_id, "cancel")

    assert lease is not None
    assert send_sql.release_lease(db, setup.campaign_id, stopping, "run", lease) == 10
    line = line_sql.line_by_id(db, finished)
    assert line is not None
    return line.status


def test_contacts_given_back_reopen_the_finished_lines_of_their_campaign(db, make_campaign) -> None:
    assert _finished_line_after_another_gives_back(db, make_campaign, cancel=False) == LineStatus.PENDING


def test_a_cancelled_campaign_s_finished_lines_stay_finished_whatever_is_given_back(db, make_campaign) -> None:
    assert _finished_line_after_another_gives_back(db, make_campaign, cancel=True) == LineStatus.DONE
