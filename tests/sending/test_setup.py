"""Before a line's first send: taking it over from a dead run, and what it needs to send."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaign_pipelines.providers import get as get_provider
from campaign_pipelines.sending.outcomes import LineStop
from campaign_pipelines.sending.setup import CLAIM_AT_LEAST, prepare, take_over
from campaign_pipelines.statuses import ContactStatus, LineStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from tests.sending.fixtures import BREVO, SENDGRID


def _prepare(db, line_id: int):
    line = line_sql.line_by_id(db, line_id)
    return prepare(db, line, campaign_sql.campaign_by_id(db, line.campaign_id), None)


def test_taking_a_line_over_from_a_dead_run_settles_what_it_held(db, make_campaign) -> None:
    setup = make_campaign(20, [SENDGRID])
    (line_id,) = setup.line_ids
    assert line_sql.claim_line(db, line_id, "dead", stale_after_s=120)
    claimed = [c.id for c in send_sql.claim(db, setup.campaign_id, line_id, "dead", 10).contacts]
    assert send_sql.mark_in_flight(db, line_id, "dead", claimed[:4]) is not None
    line = line_sql.line_by_id(db, line_id)
    warnings: list[str] = []

    assert not take_over(db, line, "mine", warnings.append)  # the dead run's heartbeat is still fresh
    db.execute("UPDATE campaign_channels SET heartbeat_at = now() - interval '10 minutes' WHERE id = %s", (line_id,))
    assert take_over(db, line, "mine", warnings.append)

    assert warnings == [
        "4 contact(s) of a call an interrupted run had started are now 'unknown'",
        "6 contact(s) an interrupted run had reserved but not requested went back to the pool",
    ]
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.UNKNOWN: 4, ContactStatus.PENDING: 16}
    assert line_sql.line_by_id(db, line_id).run_id == "mine"


def test_a_run_frozen_while_taking_a_line_over_settles_nothing_its_next_owner_holds(
    db, make_campaign, monkeypatch
) -> None:
    setup = make_campaign(20, [SENDGRID])
    (line_id,) = setup.line_ids
    line = line_sql.line_by_id(db, line_id)
    claim_line = line_sql.claim_line
    held: list[int] = []

    def frozen_after_claiming(conn, line_id, run_id, *, stale_after_s):
        taken = claim_line(conn, line_id, run_id, stale_after_s=stale_after_s)
        # The run freezes here, past its heartbeat's age: the next run takes the line over, leases
        # contacts and starts a call.
        db.execute(
            "UPDATE campaign_channels SET heartbeat_at = now() - interval '10 minutes' WHERE id = %s", (line_id,)
        )
        assert claim_line(db, line_id, "next", stale_after_s=stale_after_s)
        held.extend(c.id for c in send_sql.claim(db, setup.campaign_id, line_id, "next", 10).contacts)
        assert send_sql.mark_in_flight(db, line_id, "next", held[:4]) is not None
        return taken

    monkeypatch.setattr(line_sql, "claim_line", frozen_after_claiming)
    warnings: list[str] = []

    # The frozen run wakes up: the line is no longer its own, and what the next run holds stays held.
    assert not take_over(db, line, "frozen", warnings.append)

    assert warnings == []
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.RESERVED: 10, ContactStatus.PENDING: 10}
    assert db.execute("SELECT count(*) FROM inflight_calls WHERE line_id = %s", (line_id,)).fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM send_returns").fetchone() == (0,)


def test_a_line_on_an_inactive_server_stops_for_a_person(db, make_campaign) -> None:
    setup = make_campaign(3, [BREVO])
    db.execute("UPDATE servers SET active = false")

    with pytest.raises(LineStop) as stopped:
        _prepare(db, setup.line_ids[0])

    assert (stopped.value.status, stopped.value.reason) == (
        LineStatus.ERROR,
        "server 'Brevo - Compte Principal' is inactive",
    )


def test_a_paced_line_sends_one_message_per_call_and_an_unpaced_one_claims_enough(db, make_campaign) -> None:
    setup = make_campaign(3, [{**SENDGRID, "send_frequency_minutes": 1.5}, BREVO])
    db.execute("UPDATE servers SET batch_size = 64 WHERE provider = 'brevo'")
    paced, unpaced = (_prepare(db, line_id) for line_id in setup.line_ids)

    assert (paced.gap, paced.batch_size, paced.claim_size) == (timedelta(minutes=1.5), 1, 1)
    assert (unpaced.gap, unpaced.batch_size, unpaced.claim_size) == (timedelta(0), 64, CLAIM_AT_LEAST)
    assert (unpaced.sender.name, unpaced.sender.email) == (BREVO["sender_name"], BREVO["sender_email"])


def test_calls_in_flight_are_one_when_paced_else_the_server_s_or_the_provider_s(db, make_campaign) -> None:
    setup = make_campaign(3, [{**SENDGRID, "send_frequency_minutes": 1.5}, SENDGRID, BREVO])
    paced, sendgrid, brevo = (_prepare(db, line_id) for line_id in setup.line_ids)
    assert (paced.calls_in_flight, sendgrid.calls_in_flight, brevo.calls_in_flight) == (
        1,
        get_provider("sendgrid").max_in_flight,
        get_provider("brevo").max_in_flight,
    )

    db.execute("UPDATE servers SET calls_in_flight = 2 WHERE provider = 'brevo'")
    assert _prepare(db, setup.line_ids[2]).calls_in_flight == 2


def test_a_missing_key_variable_stops_the_line_clearly(db, make_campaign, run_line, monkeypatch) -> None:
    setup = make_campaign(5, [BREVO])
    monkeypatch.delenv("BREVO_API_KEY")

    outcome = run_line(setup.line_ids[0])

    assert outcome.status == "error" and "BREVO_API_KEY" in outcome.reason
