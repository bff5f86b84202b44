"""Line state SQL: the live run rule that claims, plans and the relaunch sensor share, and the heartbeat."""

from __future__ import annotations

from campaign_pipelines.sending import campaign as lifecycle
from campaign_pipelines.statuses import CampaignStatus
from campaign_pipelines.store import lines as line_sql
from tests.sending.fixtures import BREVO, SENDGRID

STALE_S = 120


def _held_by(db, line_id: int, run_id: str | None, *, heartbeat_ago_s: float) -> None:
    db.execute(
        "UPDATE campaign_channels SET status = 'sending', run_id = %s,"
        " heartbeat_at = now() - make_interval(secs => %s) WHERE id = %s",
        (run_id, heartbeat_ago_s, line_id),
    )


def _not_held(db, campaign_id: int) -> list[int]:
    return [line.id for line in line_sql.lines_not_held(db, campaign_id, "mine", stale_after_s=STALE_S)]


def _due(db) -> list[tuple[int, str]]:
    return [(line.line_id, line.why) for line in line_sql.lines_due(db, stale_after_s=STALE_S, quota=False)]


def test_a_line_another_run_sends_is_left_to_it_while_its_heartbeat_is_fresh(db, make_campaign) -> None:
    setup = make_campaign(5, [BREVO, SENDGRID])
    held, free = setup.line_ids
    _held_by(db, held, "other", heartbeat_ago_s=STALE_S - 30)

    assert _not_held(db, setup.campaign_id) == [free]
    assert _due(db) == [(free, "pending")]
    assert not line_sql.claim_line(db, held, "mine", stale_after_s=STALE_S)
    # Its own run may claim it again (a retried step).
    assert line_sql.claim_line(db, held, "other", stale_after_s=STALE_S)


def test_a_line_whose_run_stopped_beating_is_stalled_and_anyone_may_take_it(db, make_campaign) -> None:
    setup = make_campaign(5, [BREVO])
    (line_id,) = setup.line_ids
    _held_by(db, line_id, "dead", heartbeat_ago_s=STALE_S + 30)

    assert _not_held(db, setup.campaign_id) == [line_id]
    assert _due(db) == [(line_id, line_sql.STALLED)]
    assert line_sql.claim_line(db, line_id, "mine", stale_after_s=STALE_S)
    assert line_sql.line_by_id(db, line_id).run_id == "mine"


def test_a_sensor_lease_is_not_relaunched_and_goes_to_the_first_run(db, make_campaign) -> None:
    setup = make_campaign(5, [BREVO, SENDGRID])

    assert line_sql.lease_lines(db, setup.line_ids, None) == 1

    assert _due(db) == []
    assert _not_held(db, setup.campaign_id) == setup.line_ids
    assert line_sql.claim_line(db, setup.line_ids[0], "mine", stale_after_s=STALE_S)


def test_the_heartbeat_tells_a_run_it_lost_its_line_or_that_the_campaign_paused(db, make_campaign) -> None:
    setup = make_campaign(5, [BREVO])
    (line_id,) = setup.line_ids
    assert line_sql.claim_line(db, line_id, "mine", stale_after_s=STALE_S)

    assert line_sql.heartbeat(db, line_id, "mine") == "sending"
    assert line_sql.heartbeat(db, line_id, "intruder") == line_sql.LOST
    lifecycle.control(db, setup.campaign_id, "pause")
    assert line_sql.heartbeat(db, line_id, "mine") == CampaignStatus.PAUSED
