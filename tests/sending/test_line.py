"""The send loop of a line against the fake providers (real PostgreSQL and Redis)."""

from __future__ import annotations

import threading
from datetime import timedelta

from psycopg import sql

from campaign_pipelines.sending import campaign as lifecycle
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.contacts import contact_table
from tests.fakes.clock import FakeClock
from tests.sending.fixtures import BREVO, MIDNIGHT, SENDGRID


def _states(db, campaign_id: int) -> dict[int, int]:
    return send_sql.status_counts(db, campaign_id)


def test_the_seed_scenario_gives_each_line_its_exact_share(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(
        11_000,
        [
            {**BREVO, "max_daily_sends": 10_000},
            {**SENDGRID, "send_frequency_minutes": 1, "max_daily_sends": 5_000},
        ],
    )
    brevo_line, sendgrid_line = setup.line_ids
    outcomes = {}
    threads = [
        threading.Thread(target=lambda line=line: outcomes.__setitem__(line, run_line(line))) for line in setup.line_ids
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes[brevo_line].status == "quota_reached"
    assert "10000/day" in outcomes[brevo_line].reason
    assert outcomes[brevo_line].sent == 10_000
    assert outcomes[sendgrid_line].status == "done"
    assert outcomes[sendgrid_line].sent == 1_000
    # Every contact sent exactly once, by one line.
    assert _states(db, setup.campaign_id) == {ContactStatus.SENT: 11_000}
    recipients = [m.to for m in fakes.messages()]
    assert len(recipients) == len(set(recipients)) == 11_000
    assert fakes.sent_count("brevo") == 10_000 and fakes.sent_count("sendgrid") == 1_000
    campaign = db.execute("SELECT sent_count FROM campaigns WHERE id = %s", (setup.campaign_id,)).fetchone()
    assert campaign[0] == 11_000
    assert lifecycle.finish(db, setup.campaign_id).status == "completed"


def test_a_paced_line_sends_one_message_per_interval(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(5, [{**SENDGRID, "send_frequency_minutes": 1.5}])
    clock = FakeClock(MIDNIGHT)

    outcome = run_line(setup.line_ids[0], clock=clock)

    assert (outcome.status, outcome.sent) == ("done", 5)
    assert clock.slept == 4 * 90  # four gaps of 1.5 min between five sends
    assert [c.messages for c in fakes.calls("sendgrid")] == [1] * 5


def test_a_future_start_date_ends_the_step_until_then(db, make_campaign, run_line, fakes) -> None:
    start = MIDNIGHT + timedelta(hours=9)
    setup = make_campaign(3, [{**BREVO, "scheduled_at": start.isoformat()}])

    outcome = run_line(setup.line_ids[0], clock=FakeClock(MIDNIGHT))

    assert outcome.status == "waiting" and outcome.sent == 0
    line = line_sql.line_by_id(db, setup.line_ids[0])
    assert line.next_run_at == start
    assert fakes.sent_count() == 0

    later = run_line(setup.line_ids[0], clock=FakeClock(start))
    assert (later.status, later.sent) == ("done", 3)


def test_a_run_whose_line_was_taken_over_stops_without_touching_it(db, make_campaign, run_line, monkeypatch) -> None:
    monkeypatch.setattr("campaign_pipelines.sending.line.CONTROL_EVERY_S", 0.0)
    setup = make_campaign(50, [{**SENDGRID, "send_frequency_minutes": 1}])
    line_id = setup.line_ids[0]

    def intruder_takes_over(outcome) -> None:
        db.execute("UPDATE campaign_channels SET run_id = 'intruder' WHERE id = %s", (line_id,))

    outcome = run_line(line_id, on_progress=intruder_takes_over)

    assert outcome.sent == 1 and outcome.reason == "another run took this line over"
    line = line_sql.line_by_id(db, line_id)
    assert (line.status, line.run_id) == ("sending", "intruder")


def test_results_recorded_in_turn_on_one_connection_are_the_same(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(2_500, [{**BREVO, "max_daily_sends": 2_000}])

    outcome = run_line(setup.line_ids[0], second_connection=False)

    assert (outcome.status, outcome.sent) == ("quota_reached", 2_000)
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 2_000, 0: 500}
    assert line_sql.line_by_id(db, setup.line_ids[0]).sent_count == 2_000


def test_a_send_appends_outcomes_and_never_rewrites_a_contact(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(2_500, [BREVO])
    rows = sql.SQL("SELECT id, xmin::text FROM {} ORDER BY id").format(contact_table(setup.campaign_id))
    before = db.execute(rows).fetchall()

    outcome = run_line(setup.line_ids[0])

    assert (outcome.status, outcome.sent) == ("done", 2_500)
    assert _states(db, setup.campaign_id) == {ContactStatus.SENT: 2_500}
    # Every contact row is the version its import wrote: sending only appended outcomes.
    assert db.execute(rows).fetchall() == before
    # Nothing is left leased or given back.
    for table in ("send_leases", "send_returns"):
        query = sql.SQL("SELECT count(*) FROM {} WHERE campaign_id = %s").format(sql.Identifier(table))
        assert db.execute(query, (setup.campaign_id,)).fetchone() == (0,)


def test_a_paced_line_skips_a_blacklisted_contact_and_goes_on(db, make_campaign, run_line, fakes) -> None:
    # A paced line claims one contact at a time: a claim can hold only a suppressed contact (no lease).
    setup = make_campaign(3, [{**SENDGRID, "send_frequency_minutes": 1}], blacklist=("user1@example.com",))

    outcome = run_line(setup.line_ids[0])

    assert (outcome.status, outcome.sent, outcome.suppressed) == ("done", 2, 1)
    assert _states(db, setup.campaign_id) == {ContactStatus.SENT: 2, ContactStatus.SUPPRESSED: 1}
    assert sorted(m.to for m in fakes.messages()) == ["user0@example.com", "user2@example.com"]


def test_a_line_paused_while_the_campaign_is_resumed_is_run_again(db, make_campaign, run_line, monkeypatch) -> None:
    setup = make_campaign(5, [SENDGRID])
    (line_id,) = setup.line_ids
    lifecycle.control(db, setup.campaign_id, "pause")
    set_line_state = line_sql.set_line_state

    def resumed_meanwhile(conn, line_id, run_id, status, **kwargs) -> None:
        # The operator resumes while the line, having seen the pause, lands its calls.
        lifecycle.control(db, setup.campaign_id, "resume")
        set_line_state(conn, line_id, run_id, status, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(line_sql, "set_line_state", resumed_meanwhile)
        assert run_line(line_id).status == "paused"

    # The campaign runs: its line is due, as every line resume made pending.
    assert [due.line_id for due in line_sql.lines_due(db, stale_after_s=120, quota=False)] == [line_id]
    assert run_line(line_id).sent == 5
