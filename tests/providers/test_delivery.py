"""deliver(): the retry policy of the send step, with fake sleeps (no real waiting)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from campaign_pipelines import providers
from campaign_pipelines.providers import (
    Ambiguous,
    AuthFailed,
    Delivery,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Rejected,
    ServerError,
    Unreachable,
    deliver,
)
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.providers.delivery import BACKOFF_CAP_S, backoff_s
from tests.fakes.providers import DEFAULT_KEYS, FakeProviders, urls
from tests.providers.support import SENDER, Wire, message, messages


class Sleeps:
    """A fake `sleep` that records what it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _deliver(wire: Wire, name: str, batch, **options) -> list[Delivery]:
    options.setdefault("sleep", Sleeps())
    options.setdefault("rng", lambda: 1.0)
    return deliver(
        wire.client,
        providers.get(name),
        url=wire.urls[name],
        api_key=DEFAULT_KEYS[name],
        sender=SENDER,
        messages=batch,
        **options,
    )


@pytest.mark.parametrize(
    ("name", "hint"),
    [("brevo", 3.0), ("sendgrid", None), ("mailgun", 4.0), ("postmark", 1.5)],
)
def test_a_429_waits_what_the_provider_says_then_succeeds(wire: Wire, name: str, hint: float | None) -> None:
    wire.state.fail_next(name, 429, retry_after_s=hint if hint is not None else 5.0)
    sleeps = Sleeps()
    told: list[tuple[float, ProviderError]] = []

    deliveries = _deliver(wire, name, messages(3), sleep=sleeps, on_wait=lambda s, e: told.append((s, e)))

    assert all(delivery.ok for delivery in deliveries)
    assert wire.state.sent_count(name) == 3
    [wait] = sleeps.waits
    if hint is None:  # SendGrid: an epoch in whole seconds, so up to one second less.
        assert 4.0 <= wait <= 5.0
    else:
        assert wait == hint
    assert [(seconds, type(error)) for seconds, error in told] == [(wait, RateLimited)]


def test_a_429_without_a_hint_backs_off(wire: Wire) -> None:
    wire.state.fail_next("postmark", 429)
    sleeps = Sleeps()

    _deliver(wire, "postmark", messages(1), sleep=sleeps, rng=lambda: 0.5)

    assert sleeps.waits == [0.25]


def test_a_429_asking_for_longer_than_the_bound_goes_to_the_caller_at_once(wire: Wire) -> None:
    wire.state.fail_next("brevo", 429, retry_after_s=600)
    sleeps = Sleeps()

    with pytest.raises(RateLimited) as caught:
        _deliver(wire, "brevo", messages(2), sleep=sleeps, idempotency_key=str(uuid.uuid4()))

    assert caught.value.retry_after_s == 600
    assert sleeps.waits == []
    assert len(wire.state.calls()) == 1


@pytest.mark.parametrize("name", ["sendgrid", "postmark"])
def test_server_errors_back_off_exponentially_with_full_jitter(wire: Wire, name: str) -> None:
    wire.state.fail_next(name, 503, times=3)
    sleeps = Sleeps()

    deliveries = _deliver(wire, name, messages(2), sleep=sleeps, rng=lambda: 1.0)

    assert all(delivery.ok for delivery in deliveries)
    assert sleeps.waits == [0.5, 1.0, 2.0]
    assert [call.status for call in wire.state.calls()] == [503, 503, 503, 202 if name == "sendgrid" else 200]


def test_jitter_is_drawn_below_a_capped_exponential() -> None:
    assert backoff_s(1, lambda: 0.0) == 0.0
    assert backoff_s(3, lambda: 0.5) == 1.0
    assert backoff_s(30, lambda: 0.999) <= BACKOFF_CAP_S
    assert backoff_s(30, lambda: 0.999) > BACKOFF_CAP_S * 0.99


def test_server_errors_give_up_after_max_attempts(wire: Wire) -> None:
    wire.state.fail_next("mailgun", 500, times=10)
    sleeps = Sleeps()

    with pytest.raises(ServerError):
        _deliver(wire, "mailgun", messages(2), sleep=sleeps, max_attempts=3)

    assert len(wire.state.calls()) == 3
    assert len(sleeps.waits) == 2
    assert wire.state.sent_count() == 0


@pytest.mark.parametrize(
    ("name", "status", "error"),
    [("brevo", 401, AuthFailed), ("brevo", 402, QuotaExhausted), ("postmark", 401, AuthFailed)],
)
def test_auth_and_quota_failures_are_raised_at_once(wire: Wire, name: str, status: int, error: type) -> None:
    wire.state.fail_next(name, status, times=5)
    sleeps = Sleeps()

    with pytest.raises(error):
        _deliver(wire, name, messages(2), sleep=sleeps)

    assert sleeps.waits == [] and len(wire.state.calls()) == 1


def test_a_rejected_call_is_raised_at_once(wire: Wire) -> None:
    wire.state.reject_sender(SENDER.email)
    sleeps = Sleeps()

    with pytest.raises(Rejected):
        _deliver(wire, "sendgrid", messages(2), sleep=sleeps)

    assert sleeps.waits == [] and len(wire.state.calls()) == 1


@pytest.mark.parametrize("name", ["sendgrid", "mailgun", "postmark"])
def test_an_ambiguous_timeout_is_not_retried_without_idempotency(wire: Wire, name: str) -> None:
    wire.state.delay_next(name, 1.0)
    sleeps = Sleeps()

    with pytest.raises(Ambiguous) as caught:
        _deliver(wire, name, messages(2), sleep=sleeps)

    assert "may have been sent" in str(caught.value)
    assert sleeps.waits == [] and len(wire.state.calls()) == 1
    # Why the caller must mark them unknown rather than failed: the provider did send them.
    assert wire.state.sent_count(name) == 2


def test_brevo_without_a_key_does_not_retry_an_ambiguous_call_either(wire: Wire) -> None:
    wire.state.delay_next("brevo", 1.0)

    with pytest.raises(Ambiguous):
        _deliver(wire, "brevo", messages(2), idempotency_key=None)

    assert len(wire.state.calls()) == 1


@pytest.mark.parametrize("count", [1, 3])
def test_brevo_retries_an_ambiguous_call_with_the_same_key_and_sends_once(wire: Wire, count: int) -> None:
    wire.state.delay_next("brevo", 1.0)
    key = str(uuid.uuid4())
    sleeps = Sleeps()

    deliveries = _deliver(wire, "brevo", messages(count), idempotency_key=key, sleep=sleeps)

    assert all(delivery.ok for delivery in deliveries)
    first, second = wire.state.calls("brevo")
    assert first.idempotency_key == second.idempotency_key == key
    assert (first.replayed, second.replayed) == (False, True)
    assert wire.state.sent_count("brevo") == count
    sent_ids = [each.message_id for each in wire.state.messages("brevo")]
    assert [delivery.provider_message_id for delivery in deliveries] == sent_ids
    assert len(sleeps.waits) == 1


def test_brevo_retries_a_lost_answer_once_only(wire: Wire) -> None:
    # Every answer is lost: a provider that ignored the key would send each recipient twice, not five times.
    wire.state.delay_next("brevo", 1.0, times=5)
    key = str(uuid.uuid4())

    with pytest.raises(Ambiguous):
        _deliver(wire, "brevo", messages(2), idempotency_key=key, max_attempts=5)

    assert [call.idempotency_key for call in wire.state.calls("brevo")] == [key, key]


def test_the_idempotency_key_must_be_a_uuid_for_brevo(wire: Wire) -> None:
    with pytest.raises(ValueError):
        _deliver(wire, "brevo", messages(1), idempotency_key="campaign-7-batch-3")
    assert wire.state.calls() == []


def test_connection_failures_before_sending_are_retried() -> None:
    state = FakeProviders()
    inner = state.transport()
    refusals = [True, True]

    def flaky(request: httpx.Request) -> httpx.Response:
        if refusals:
            refusals.pop()
            raise httpx.ConnectError("connection refused", request=request)
        return inner.handle_request(request)

    sleeps = Sleeps()
    with ProviderClient(httpx.MockTransport(flaky), timeout=2.0) as client:
        deliveries = deliver(
            client,
            providers.get("postmark"),
            url=urls("http://fake.test")["postmark"],
            api_key=DEFAULT_KEYS["postmark"],
            sender=SENDER,
            messages=messages(2),
            sleep=sleeps,
            rng=lambda: 1.0,
        )

    assert all(delivery.ok for delivery in deliveries)
    assert sleeps.waits == [0.5, 1.0]


def test_an_unreachable_server_gives_up_after_max_attempts() -> None:
    sleeps = Sleeps()
    # Port 9 (discard) on loopback: nothing listens there in a test environment.
    with ProviderClient(timeout=2.0) as client, pytest.raises(Unreachable, match="could not connect"):
        deliver(
            client,
            providers.get("sendgrid"),
            url="http://127.0.0.1:9/v3/mail/send",
            api_key="SG.x",
            sender=SENDER,
            messages=messages(1),
            max_attempts=2,
            sleep=sleeps,
            rng=lambda: 0.0,
        )
    assert sleeps.waits == [0.0]


@pytest.mark.parametrize("name", ["brevo", "sendgrid", "mailgun"])
def test_a_batch_refused_for_one_recipient_is_split_until_that_recipient_fails_alone(wire: Wire, name: str) -> None:
    wire.state.reject_recipient("reader5@example.org")
    batch = messages(8)

    deliveries = _deliver(wire, name, batch, idempotency_key=str(uuid.uuid4()))

    assert [delivery.send_id for delivery in deliveries] == [sent.send_id for sent in batch]
    assert [delivery.ok for delivery in deliveries] == [True] * 5 + [False] + [True] * 2
    assert "reader5@example.org" in deliveries[5].error
    assert sorted(each.to for each in wire.state.messages()) == sorted(
        sent.to_email for sent in batch if sent.to_email != "reader5@example.org"
    )
    # Halving 8 → 4 → 2 → 1 costs a handful of calls, not one per message.
    assert len(wire.state.calls()) <= 7


def test_several_calls_use_derived_keys_and_report_what_finished_before_a_failure(wire: Wire) -> None:
    wire.state.fail_next("brevo", 401, after=1)
    key = str(uuid.uuid4())
    batch = messages(1500)

    with pytest.raises(AuthFailed) as caught:
        _deliver(wire, "brevo", batch, idempotency_key=key)

    assert [delivery.send_id for delivery in caught.value.done] == [sent.send_id for sent in batch[:1000]]
    first, second = wire.state.calls("brevo")
    assert first.idempotency_key not in (None, key)
    assert wire.state.sent_count() == 1000


def test_a_message_sent_alone_keeps_its_place_among_the_verdicts(wire: Wire) -> None:
    batch = [*messages(2), message(2, html=f"<p>{'x' * 20_000}</p>"), message(3)]

    deliveries = _deliver(wire, "sendgrid", batch)

    assert [delivery.send_id for delivery in deliveries] == [sent.send_id for sent in batch]
    assert [call.messages for call in wire.state.calls()] == [1, 3]


def test_split_calls_all_get_their_verdicts(wire: Wire) -> None:
    batch = messages(1200)

    deliveries = _deliver(wire, "postmark", batch)

    assert [delivery.send_id for delivery in deliveries] == [sent.send_id for sent in batch]
    assert [call.messages for call in wire.state.calls()] == [500, 500, 200]


def test_a_repeated_recipient_goes_in_a_later_call(wire: Wire) -> None:
    batch = [*messages(3), message(1, send_id="c7-again")]

    deliveries = _deliver(wire, "mailgun", batch)

    assert [delivery.send_id for delivery in deliveries] == [sent.send_id for sent in batch]
    assert [call.messages for call in wire.state.calls()] == [3, 1]


def test_max_attempts_must_allow_one_try(wire: Wire) -> None:
    with pytest.raises(ValueError):
        _deliver(wire, "postmark", messages(1), max_attempts=0)
