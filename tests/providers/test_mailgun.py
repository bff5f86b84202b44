"""Mailgun's wire format: the sender's domain in the path, multipart fields, recipient-variables."""

from __future__ import annotations

import base64

import orjson
import pytest

from campaign_pipelines import providers
from campaign_pipelines.providers import RateLimited
from tests.fakes.providers.mailgun import form_fields
from tests.providers.support import Recorder, Wire, message, messages


def _fields(recorder: Recorder) -> list[tuple[str, str]]:
    request = recorder.requests[-1]
    fields = form_fields(request.headers["content-type"], request.content)
    assert fields is not None
    return fields


def test_single_send_posts_multipart_to_the_senders_domain(recorder: Recorder) -> None:
    recorder.send("mailgun", [message(1)])

    request = recorder.requests[0]
    assert request.url.path == "/v3/example.com/messages"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"api:key-fake").decode()
    fields = dict(_fields(recorder))
    assert fields["to"] == "reader1@example.org"
    assert fields["from"] == "Acme News <news@example.com>"
    assert fields["v:send_id"] == "c7-r1"
    assert fields["h:List-Unsubscribe"] == "<https://t.example.com/u/tok1>"
    assert "recipient-variables" not in fields


def test_batch_send_uses_one_to_per_recipient_and_recipient_variables(recorder: Recorder) -> None:
    batch = messages(4)

    deliveries = recorder.send("mailgun", batch)

    fields = _fields(recorder)
    assert [value for name, value in fields if name == "to"] == [sent.to_email for sent in batch]
    named = dict(fields)
    assert named["v:send_id"] == "%recipient.send_id%"
    variables = orjson.loads(named["recipient-variables"])
    assert [variables[sent.to_email]["send_id"] for sent in batch] == [sent.send_id for sent in batch]
    assert "Our March news, the same for everyone." in named["html"]
    assert len({delivery.provider_message_id for delivery in deliveries}) == 1


def test_messages_with_different_header_names_never_share_a_call() -> None:
    provider = providers.get("mailgun")
    plain = message(9, headers={})

    calls = provider.split([*messages(2), plain, message(3)])

    assert [[sent.send_id for sent in call] for call in calls] == [["c7-r0", "c7-r1", "c7-r3"], ["c7-r9"]]


def test_a_message_containing_recipient_markers_goes_alone() -> None:
    provider = providers.get("mailgun")
    odd = message(2, html="<p>%recipient.name%</p>")

    calls = provider.split([*messages(2), odd])

    assert [[sent.send_id for sent in call] for call in calls] == [["c7-r2"], ["c7-r0", "c7-r1"]]


@pytest.mark.parametrize(("hint", "expected"), [(None, None), (5.0, 5.0)])
def test_a_429_waits_for_retry_after_when_given(wire: Wire, hint: float | None, expected: float | None) -> None:
    wire.state.fail_next("mailgun", 429, retry_after_s=hint)

    with pytest.raises(RateLimited) as caught:
        wire.send("mailgun", messages(2))

    assert caught.value.retry_after_s == expected
