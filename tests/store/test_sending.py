"""Sending SQL: every write of a run is fenced by its owning the line."""

from __future__ import annotations

from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import recovery as recovery_sql
from campaign_pipelines.store import sending as send_sql
from tests.sending.fixtures import SENDGRID


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
    assert recovery_sql.recover_line(db, setup.campaign_id, line_id) == (5, 5)
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
