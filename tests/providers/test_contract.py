"""The contract every provider of the registry keeps, checked against its fake over both transports:
its send half (batches, errors mapped to our family, no secret quoted) here; its webhook half
through the tracking app in tests/providers/test_webhook_contract.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from campaign_pipelines import providers
from campaign_pipelines.providers import (
    Ambiguous,
    AuthFailed,
    BatchRefused,
    OutgoingMessage,
    RateLimited,
    Rejected,
    Sender,
    ServerError,
    deliver,
    registry,
)
from campaign_pipelines.providers.client import ProviderClient
from tests.fakes.providers import DEFAULT_KEYS, FAKES, Reply, urls
from tests.providers.support import SENDER, Recorder, Wire, message, messages

HTTP_PROVIDERS = [name for name, provider in registry.PROVIDERS.items() if not provider.local]


def _key(name: str) -> str | None:
    return str(uuid.uuid4()) if providers.get(name).idempotent else None


def test_the_registry_gives_each_provider_by_the_name_of_its_module() -> None:
    assert registry.NAMES == registry.MODULES
    for name in registry.NAMES:
        provider = providers.get(name)
        assert provider.name == name
        assert registry.DEFAULT_URLS[name] == provider.default_url
        assert provider.max_batch >= 1 and provider.max_call_bytes > 0
    with pytest.raises(ValueError, match="unknown provider 'smtp'"):
        providers.get("smtp")


@pytest.mark.parametrize("name", registry.NAMES)
def test_every_provider_that_sends_over_the_network_has_its_webhook_and_its_fake(name: str) -> None:
    provider = providers.get(name)
    if provider.local:
        assert provider.webhook is None and name not in FAKES
        return
    assert provider.webhook is not None and provider.webhook.secrets
    assert provider.default_url.startswith("https://")
    # The fake answers on its own paths only, among all the fakes served together.
    assert FAKES[name].url("http://fake.test") == urls("http://fake.test")[name]


@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_single_send_reaches_the_recipient_with_its_headers_and_send_id(wire: Wire, name: str) -> None:
    sent = message(1)

    [delivery] = wire.send(name, [sent], idempotency_key=_key(name))

    assert delivery.ok and delivery.error is None and delivery.send_id == "c7-r1"
    [received] = wire.state.messages(name)
    assert (received.to, received.sender, received.subject) == (sent.to_email, SENDER.email, sent.subject)
    assert (received.html, received.text) == (sent.html, sent.text)
    assert received.headers["List-Unsubscribe"] == "<https://t.example.com/u/tok1>"
    assert received.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received.custom_id == "c7-r1"
    assert delivery.provider_message_id == received.message_id
    [call] = wire.state.calls(name)
    assert call.status in (200, 201, 202) and call.messages == 1


@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_batch_send_keeps_each_recipients_own_content_and_id(wire: Wire, name: str) -> None:
    batch = messages(5) + [message(9, subject="A subject of its own", html="<p>Totally different</p>", text="")]

    deliveries = wire.send(name, batch, idempotency_key=_key(name))

    assert [delivery.send_id for delivery in deliveries] == [sent.send_id for sent in batch]
    assert all(delivery.ok and delivery.provider_message_id for delivery in deliveries)
    assert len(wire.state.calls(name)) == 1, "a batch is one HTTP call"
    received = {each.to: each for each in wire.state.messages(name)}
    assert len(received) == len(batch)
    for sent, delivery in zip(batch, deliveries, strict=True):
        got = received[sent.to_email]
        assert (got.subject, got.html, got.text) == (sent.subject, sent.html, sent.text)
        assert {name: got.headers[name] for name in sent.headers} == sent.headers
        assert got.custom_id == sent.send_id
        assert delivery.provider_message_id == got.message_id


@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_a_wrong_api_key_is_auth_failed_and_never_quoted(wire: Wire, name: str) -> None:
    with pytest.raises(AuthFailed) as caught:
        wire.send(name, messages(2), api_key="not-the-key-s3cr3t", idempotency_key=_key(name))

    assert name in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert wire.state.sent_count() == 0


@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_a_scripted_401_is_auth_failed(wire: Wire, name: str) -> None:
    wire.state.fail_next(name, 401)

    with pytest.raises(AuthFailed):
        wire.send(name, messages(1), idempotency_key=_key(name))


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_5xx_is_a_retryable_server_error(wire: Wire, name: str, status: int) -> None:
    wire.state.fail_next(name, status)

    with pytest.raises(ServerError) as caught:
        wire.send(name, messages(3), idempotency_key=_key(name))

    assert caught.value.status == status
    assert wire.state.sent_count() == 0


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_an_unverified_sender_condemns_the_whole_call(wire: Wire, name: str, count: int) -> None:
    wire.state.reject_sender(SENDER.email)

    with pytest.raises(Rejected) as caught:
        wire.send(name, messages(count), idempotency_key=_key(name))

    assert SENDER.email in str(caught.value)
    assert wire.state.sent_count() == 0


@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_a_refused_recipient_in_a_single_send_fails_that_recipient_in_the_providers_words(
    wire: Wire, name: str
) -> None:
    wire.state.reject_recipient("reader1@example.org")

    [delivery] = wire.send(name, [message(1)], idempotency_key=_key(name))

    assert not delivery.ok and delivery.provider_message_id is None
    assert "reader1@example.org" in delivery.error
    assert FAKES[name].refused_recipient_words in delivery.error


@pytest.mark.parametrize("name", [name for name in HTTP_PROVIDERS if not FAKES[name].partial_batches])
def test_a_refused_recipient_refuses_the_whole_batch_where_the_api_has_no_partial_success(
    wire: Wire, name: str
) -> None:
    wire.state.reject_recipient("reader2@example.org")

    with pytest.raises(BatchRefused):
        wire.send(name, messages(4), idempotency_key=_key(name))

    assert wire.state.sent_count() == 0


@pytest.mark.parametrize("name", [name for name in HTTP_PROVIDERS if FAKES[name].partial_batches])
def test_a_refused_recipient_in_a_batch_fails_only_that_recipient_where_the_api_says_so(wire: Wire, name: str) -> None:
    wire.state.reject_recipient("reader2@example.org")

    deliveries = wire.send(name, messages(4), idempotency_key=_key(name))

    assert [delivery.ok for delivery in deliveries] == [True, True, False, True]
    assert "reader2@example.org" in deliveries[2].error
    assert FAKES[name].refused_recipient_words in deliveries[2].error
    assert sorted(each.to for each in wire.state.messages()) == [
        "reader0@example.org",
        "reader1@example.org",
        "reader3@example.org",
    ]


@pytest.mark.parametrize("hint", [7.0, None])
@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_a_429_is_rate_limited_with_the_providers_hint(wire: Wire, name: str, hint: float | None) -> None:
    wire.state.fail_next(name, 429, retry_after_s=hint)

    with pytest.raises(RateLimited) as caught:
        wire.send(name, messages(2), idempotency_key=_key(name))

    waited = caught.value.retry_after_s
    if hint is not None:
        # Some providers give a reset time in whole seconds since the epoch: up to a second less.
        assert waited is not None and hint - 1.5 <= waited <= hint
    else:
        assert waited is None or 0 < waited <= 60
    assert wire.state.sent_count() == 0


@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_a_lost_answer_is_ambiguous_and_retried_only_under_an_idempotency_key(wire: Wire, name: str) -> None:
    provider = providers.get(name)
    wire.state.delay_next(name, 1.0)
    send = {
        "url": wire.urls[name],
        "api_key": DEFAULT_KEYS[name],
        "sender": SENDER,
        "messages": messages(3),
        "idempotency_key": str(uuid.uuid4()),
        "sleep": lambda seconds: None,
    }

    if provider.idempotent:
        deliveries = deliver(wire.client, provider, **send)
        assert all(delivery.ok for delivery in deliveries)
        assert [call.replayed for call in wire.state.calls(name)] == [False, True]
    else:
        with pytest.raises(Ambiguous, match="may have been sent"):
            deliver(wire.client, provider, **send)
        assert len(wire.state.calls(name)) == 1
    # Why the caller marks them unknown, never failed: the provider did send them, once.
    assert wire.state.sent_count(name) == 3


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_an_answer_that_is_not_the_providers_is_ambiguous_in_its_words_without_the_key(
    wire: Wire, name: str, count: int
) -> None:
    wire.state.answer_next(
        name, Reply(200, b"<html><h1>Moved to the new portal</h1></html>", {"content-type": "text/html"})
    )

    with pytest.raises(Ambiguous) as caught:
        wire.send(name, messages(count), idempotency_key=_key(name))

    said = str(caught.value)
    assert said.startswith(f"{name}: ") and "Moved to the new portal" in said
    assert DEFAULT_KEYS[name] not in said


@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_send_refuses_more_than_one_call_can_carry(wire: Wire, name: str) -> None:
    provider = providers.get(name)
    too_many = [message(index) for index in range(provider.max_batch + 1)]

    with pytest.raises(ValueError, match="use split"):
        wire.send(name, too_many, idempotency_key=_key(name))
    assert wire.state.calls() == []


@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_split_respects_the_batch_size_and_never_repeats_a_recipient_in_a_call(name: str) -> None:
    provider = providers.get(name)
    batch = messages(provider.max_batch + 10) + [message(1, send_id="again")]

    calls = provider.split(batch)

    assert sorted(sent.send_id for call in calls for sent in call) == sorted(sent.send_id for sent in batch)
    assert all(len(call) <= provider.max_batch for call in calls)
    for call in calls:
        recipients = [sent.to_email for sent in call]
        assert len(recipients) == len(set(recipients))
    assert len(calls) == 2


@pytest.mark.parametrize("name", HTTP_PROVIDERS)
def test_a_key_with_a_line_break_is_refused_without_being_quoted(fake_server, name: str) -> None:
    # Refused before sending where the key goes in a header as it is; by the provider where it is encoded.
    with ProviderClient(timeout=2.0) as client, pytest.raises((Rejected, AuthFailed)) as caught:
        providers.get(name).send(
            client,
            url=urls(fake_server.url)[name],
            api_key="abc\nsecret-part",
            sender=SENDER,
            messages=[message(1)],
            idempotency_key=None,
        )
    assert "secret-part" not in str(caught.value)


FORGED_SENDERS = {
    "name": Sender("Promo\r\nBcc: evil@attacker.example", "news@example.com"),
    "email": Sender("Promo", "news@example.com\nBcc: evil@attacker.example"),
}
FORGED_HEADERS = [
    {"List-Unsubscribe": "<https://t.example.com/u/x>\r\nBcc: evil@attacker.example"},
    {"Bcc: evil@attacker.example\r\nX": "x"},
]


def _send_nowhere(name: str, recorder: Recorder, outbox: Path, sender: Sender, batch: list[OutgoingMessage]) -> None:
    """One call through the in-process fakes (a local provider writes into `outbox`)."""
    url = f"file:{outbox}" if providers.get(name).local else urls("http://fake-providers.test")[name]
    providers.get(name).send(
        recorder.client,
        url=url,
        api_key=DEFAULT_KEYS.get(name, ""),
        sender=sender,
        messages=batch,
        idempotency_key=None,
    )


@pytest.mark.parametrize("field", list(FORGED_SENDERS))
@pytest.mark.parametrize("name", registry.NAMES)
def test_a_sender_with_a_line_break_is_rejected_before_anything_is_sent(
    recorder: Recorder, tmp_path: Path, name: str, field: str
) -> None:
    with pytest.raises(Rejected, match=f"^{name}: the line's sender {field} contains control characters"):
        _send_nowhere(name, recorder, tmp_path, FORGED_SENDERS[field], messages(2))

    assert recorder.requests == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("headers", FORGED_HEADERS)
@pytest.mark.parametrize("name", registry.NAMES)
def test_a_header_that_would_forge_another_is_rejected_before_anything_is_sent(
    recorder: Recorder, tmp_path: Path, name: str, headers: dict[str, str]
) -> None:
    with pytest.raises(Rejected, match="the header .* of the message to reader1@example.org has"):
        _send_nowhere(name, recorder, tmp_path, SENDER, [message(0), message(1, headers=headers)])

    assert recorder.requests == [] and list(tmp_path.iterdir()) == []
