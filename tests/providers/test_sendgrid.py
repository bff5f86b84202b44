"""SendGrid's wire format: personalizations, substitutions for per-recipient bodies, X-Message-Id."""

from __future__ import annotations

import pytest

from campaign_pipelines import providers
from campaign_pipelines.providers import BatchRefused, RateLimited
from campaign_pipelines.providers.sendgrid import MAX_SUBSTITUTION_BYTES
from tests.providers.support import Recorder, Wire, message, messages


def test_single_send_has_one_personalization_with_the_send_id(recorder: Recorder) -> None:
    [delivery] = recorder.send("sendgrid", [message(1)])

    request = recorder.requests[0]
    assert request.headers["authorization"] == "Bearer SG.fake-key"
    body = recorder.json()
    assert body["personalizations"] == [{"to": [{"email": "reader1@example.org"}], "custom_args": {"send_id": "c7-r1"}}]
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert body["headers"]["List-Unsubscribe"] == "<https://t.example.com/u/tok1>"
    assert delivery.provider_message_id == recorder.state.messages()[0].message_id


def test_batch_bodies_share_one_template_and_carry_only_their_differences(recorder: Recorder) -> None:
    batch = messages(50)

    deliveries = recorder.send("sendgrid", batch)

    body = recorder.json()
    assert len(body["personalizations"]) == 50
    html = next(part["value"] for part in body["content"] if part["type"] == "text/html")
    assert "Our March news, the same for everyone." in html
    for personalization in body["personalizations"]:
        assert sum(len(value) for value in personalization["substitutions"].values()) < 20
    # SendGrid gives one id for the call; each recipient's events extend it.
    assert len({delivery.provider_message_id for delivery in deliveries}) == 1
    received = {each.to: each for each in recorder.state.messages()}
    assert [received[sent.to_email].html for sent in batch] == [sent.html for sent in batch]
    assert [received[sent.to_email].headers["List-Unsubscribe"] for sent in batch] == [
        sent.headers["List-Unsubscribe"] for sent in batch
    ]


def test_a_message_differing_by_more_than_the_substitution_limit_goes_alone() -> None:
    provider = providers.get("sendgrid")
    big = message(3, html=f"<p>{'x' * (MAX_SUBSTITUTION_BYTES + 1)}</p>")
    batch = [*messages(3), big, message(4)]

    calls = provider.split(batch)

    assert [[sent.send_id for sent in call] for call in calls] == [["c7-r3"], ["c7-r0", "c7-r1", "c7-r2", "c7-r4"]]


def test_send_refuses_a_batch_over_the_substitution_limit_before_any_request(recorder: Recorder) -> None:
    batch = [*messages(2), message(3, html=f"<p>{'x' * (MAX_SUBSTITUTION_BYTES + 1)}</p>")]

    with pytest.raises(BatchRefused, match="10000 bytes"):
        recorder.send("sendgrid", batch)
    assert recorder.requests == []


def test_texts_containing_the_substitution_marker_go_alone() -> None:
    provider = providers.get("sendgrid")
    odd = message(2, text="a literal [%cp:h0%] in the text")

    calls = provider.split([*messages(2), odd])

    assert [[sent.send_id for sent in call] for call in calls] == [["c7-r2"], ["c7-r0", "c7-r1"]]


def test_the_rate_limit_reset_epoch_gives_the_wait(wire: Wire) -> None:
    wire.state.fail_next("sendgrid", 429, retry_after_s=30)

    with pytest.raises(RateLimited) as caught:
        wire.send("sendgrid", messages(1))

    assert 28.0 <= caught.value.retry_after_s <= 30.0
