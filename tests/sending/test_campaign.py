"""A campaign's sending lifecycle: which lines a run sends."""

from __future__ import annotations

from campaign_pipelines.sending import campaign as lifecycle
from tests.sending.fixtures import BREVO, SENDGRID


def test_a_line_held_by_a_live_run_is_left_to_it(db, make_campaign) -> None:
    setup = make_campaign(5, [BREVO, SENDGRID])
    held, free = setup.line_ids
    db.execute(
        "UPDATE campaign_channels SET status = 'sending', run_id = 'other', heartbeat_at = now() WHERE id = %s", (held,)
    )

    planned = lifecycle.lines_to_run(db, setup.campaign_id, None, run_id="mine", stale_after_s=120)

    assert [line.id for line in planned] == [free]
