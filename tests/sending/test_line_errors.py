"""Provider trouble during a send: every contact ends final, unknown or back in the pool."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import redis

from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.quotas import RedisQuotas
from campaign_pipelines.sending.line import LineSender
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import quotas as quota_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.connection import connect
from tests.fakes.clock import FakeClock
from tests.sending.fixtures import BREVO, MIDNIGHT, REDIS_URL, SENDGRID
from tests.support import contact_outcomes


def test_429_waits_as_the_provider_says_then_sends(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(50, [BREVO])
    fakes.fail_next("brevo", 429, retry_after_s=7)
    clock = FakeClock(MIDNIGHT)

    outcome = run_line(setup.line_ids[0], clock=clock)

    assert (outcome.status, outcome.sent) == ("done", 50)
    assert clock.slept >= 7
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 50}


def test_5xx_is_retried_with_backoff(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(30, [SENDGRID])
    fakes.fail_next("sendgrid", 503, times=2)
    clock = FakeClock(MIDNIGHT)

    outcome = run_line(setup.line_ids[0], clock=clock)

    assert (outcome.status, outcome.sent) == ("done", 30)
    assert 0 < clock.slept <= 60
    assert len([c for c in fakes.calls("sendgrid") if c.status == 503]) == 2


def test_a_timeout_on_brevo_is_retried_safely_with_the_same_idempotency_key(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(10, [BREVO])
    fakes.delay_next("brevo", 30)

    outcome = run_line(setup.line_ids[0])

    assert (outcome.sent, outcome.unknown) == (10, 0)
    keys = [call.idempotency_key for call in fakes.calls("brevo")]
    assert len(keys) == 2 and keys[0] == keys[1] is not None
    assert fakes.sent_count("brevo") == 10  # delivered once


def test_blacklisted_contacts_are_suppressed_at_send_time(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(10, [BREVO], blacklist=("user4@example.com",))
    db.execute("INSERT INTO blacklist (email, reason) VALUES ('user7@example.com', 'unsubscribed')")

    outcome = run_line(setup.line_ids[0])

    assert (outcome.sent, outcome.suppressed) == (8, 2)
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 8, ContactStatus.SUPPRESSED: 2}
    assert {m.to for m in fakes.messages()}.isdisjoint({"user4@example.com", "user7@example.com"})


def test_a_server_cap_is_shared_by_every_line_of_the_account(db, make_campaign, run_line, fakes) -> None:
    lines = [{**BREVO, "sender_email": f"promo{i}@mondomaine.com"} for i in range(4)]
    setup = make_campaign(3000, lines)
    db.execute("UPDATE servers SET daily_cap = 1000, batch_size = 64")

    with ThreadPoolExecutor(4) as workers:  # four workers at once, as four steps would
        outcomes = list(workers.map(run_line, setup.line_ids))

    assert sum(o.sent for o in outcomes) == 1000
    assert all(o.status == "quota_reached" and "server cap 1000/day" in o.reason for o in outcomes)
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 1000, ContactStatus.PENDING: 2000}


def test_personalisation_reaches_each_recipient(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(3, [BREVO])

    run_line(setup.line_ids[0])

    by_recipient = {m.to: m for m in fakes.messages()}
    message = by_recipient["user2@example.com"]
    assert message.subject == "Offres User2"
    assert "Bonjour User2" in message.html and "Bonjour User2" in message.text
    assert message.custom_id == f"{setup.campaign_id}-3"


def test_a_contact_whose_message_fails_to_render_fails_alone(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(300, [{**BREVO, "max_daily_sends": 1_000}])
    # "User0" divides by zero; the 299 others render.
    db.execute(
        "UPDATE campaigns SET template_html = '<p>{{ 100 // (first_name[4:]|int) }}</p>' WHERE id = %s",
        (setup.campaign_id,),
    )

    outcome = run_line(setup.line_ids[0])

    assert (outcome.status, outcome.sent, outcome.failed, outcome.unknown) == ("done", 299, 1, 0)
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 299, ContactStatus.FAILED: 1}
    ((email, error),) = contact_outcomes(db, setup.campaign_id, ContactStatus.FAILED)
    assert email == "user0@example.com"
    assert error == "the template failed for this contact: ZeroDivisionError: integer division or modulo by zero"
    assert "user0@example.com" not in {m.to for m in fakes.messages()}
    line = line_sql.line_by_id(db, setup.line_ids[0])
    assert (line.sent_count, line.failed_count, line.unknown_count) == (299, 1, 0)
    # No request was made for it: its send is given back to the day's quota.
    assert quota_sql.used(db, f"line:{line.id}", MIDNIGHT.date()) == 299


def test_a_quota_holds_when_redis_loses_its_counters(db, make_campaign, run_line, fakes, quota_namespace) -> None:
    setup = make_campaign(1_000, [{**BREVO, "max_daily_sends": 300}])
    first = run_line(setup.line_ids[0])
    # Redis restarted empty: the counters are gone, PostgreSQL's record is not.
    client = redis.Redis.from_url(REDIS_URL)
    assert client.delete(*client.scan_iter(f"campaigns:{quota_namespace}:*")) == 1
    client.close()

    again = run_line(setup.line_ids[0])

    assert (first.status, first.sent) == ("quota_reached", 300)
    assert (again.status, again.sent) == ("quota_reached", 0)
    assert "300/day" in again.reason
    assert fakes.sent_count("brevo") == 300


def test_a_line_goes_on_within_its_quota_when_redis_is_unreachable(db, database_url, make_campaign, fakes) -> None:
    setup = make_campaign(500, [{**BREVO, "max_daily_sends": 300}])
    # Nothing listens on port 1.
    unreachable = RedisQuotas(redis.Redis(port=1, socket_connect_timeout=1), "nowhere")
    with connect(database_url) as conn, ProviderClient(fakes.transport(), timeout=5) as client:
        outcome = LineSender(
            conn, setup.line_ids[0], run_id="run", quotas=unreachable, client=client, clock=FakeClock(MIDNIGHT)
        ).run()

    assert (outcome.status, outcome.sent) == ("quota_reached", 300)
    assert len(outcome.warnings) == 1 and outcome.warnings[0].startswith("Redis is unreachable (")
    assert fakes.sent_count("brevo") == 300
