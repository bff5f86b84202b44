"""SparkPost's wire format: one transmission per call, each recipient's rendered parts in its
substitution_data, per-recipient verdicts from rcpt_to_errors, its 420 quota answer, and its
webhook batches of msys events with basic auth."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
from starlette.testclient import TestClient

from campaign_pipelines import providers
from campaign_pipelines.providers import Ambiguous, BatchRefused, QuotaExhausted, Rejected, Sender, sparkpost
from campaign_pipelines.providers.webhook import MalformedPayload
from tests.fakes.providers import Reply
from tests.fakes.providers.base import basic_auth as basic
from tests.fakes.providers.base import json_reply
from tests.fakes.providers.sparkpost import PASSWORD as SPARKPOST_PASSWORD
from tests.fakes.providers.sparkpost import USER as SPARKPOST_USER
from tests.fakes.providers.sparkpost import event as sparkpost_event
from tests.providers.support import Recorder, Wire, message, messages
from tests.providers.webhook_support import NOW, blacklisted, body, events, nothing_recorded


def test_single_send_is_a_transmission_whose_content_places_the_recipients_parts(recorder: Recorder) -> None:
    [delivery] = recorder.send("sparkpost", [message(1)])

    request = recorder.requests[0]
    assert request.url.path == "/api/v1/transmissions"
    assert request.headers["authorization"] == "fake-sparkpost-key"
    sent = recorder.json()
    assert sent["content"] == {
        "from": {"email": "news@example.com", "name": "{{cp_from_name}}"},
        "subject": "{{cp_subject}}",
        "html": "{{{cp_html}}}",
        "text": "{{cp_text}}",
        "headers": {"List-Unsubscribe": "{{cp_header_0}}", "List-Unsubscribe-Post": "{{cp_header_1}}"},
    }
    assert sent["substitution_data"] == {"cp_from_name": "Acme News"}
    [recipient] = sent["recipients"]
    assert recipient["address"] == {"email": "reader1@example.org"}
    assert recipient["metadata"] == {"send_id": "c7-r1"}
    assert recipient["substitution_data"]["cp_html"] == message(1).html
    assert recipient["substitution_data"]["cp_header_0"] == "<https://t.example.com/u/tok1>"
    assert delivery.provider_message_id == recorder.state.messages()[0].message_id


def test_a_batch_is_one_transmission_and_every_message_gets_its_id(recorder: Recorder) -> None:
    batch = messages(30)

    deliveries = recorder.send("sparkpost", batch)

    assert len(recorder.requests) == 1
    assert [each["address"]["email"] for each in recorder.json()["recipients"]] == [sent.to_email for sent in batch]
    assert len({delivery.provider_message_id for delivery in deliveries}) == 1
    received = {each.to: each for each in recorder.state.messages()}
    assert [received[sent.to_email].html for sent in batch] == [sent.html for sent in batch]


def test_a_body_with_template_braces_arrives_as_written(recorder: Recorder) -> None:
    # Substitution values are never evaluated: a rendered body may hold SparkPost's own syntax.
    braces = message(1, html="<p>{{first_name}} & {{{raw}}}</p>", subject="{{ if x }}", text="{{y}}")

    recorder.send("sparkpost", [braces, message(2)])

    got = recorder.state.messages()[0]
    assert (got.html, got.subject, got.text) == (braces.html, braces.subject, braces.text)


def test_a_sender_without_a_name_is_an_address_alone(recorder: Recorder) -> None:
    recorder.send("sparkpost", [message(1)], sender=Sender("", "news@example.com"))

    sent = recorder.json()
    assert sent["content"]["from"] == "news@example.com" and "substitution_data" not in sent


def test_the_eu_endpoint_is_a_server_url_like_any_other(recorder: Recorder) -> None:
    recorder.send("sparkpost", [message(1)], url="https://api.eu.sparkpost.com/api/v1/")

    assert str(recorder.requests[0].url) == "https://api.eu.sparkpost.com/api/v1/transmissions"


def test_a_call_holds_messages_with_the_same_header_names_and_text_part() -> None:
    provider = providers.get("sparkpost")
    other = message(2, headers={"List-Unsubscribe": "<https://t.example.com/u/tok2>"})
    batch = [message(0), other, message(1, text=""), message(3)]

    calls = provider.split(batch)

    assert [[sent.send_id for sent in call] for call in calls] == [["c7-r0", "c7-r3"], ["c7-r2"], ["c7-r1"]]


def test_send_refuses_messages_that_cannot_share_a_call(recorder: Recorder) -> None:
    other = message(2, headers={"X-Other": "x"})

    with pytest.raises(ValueError, match="use split"):
        recorder.send("sparkpost", [message(1), other])
    assert recorder.requests == []


def test_the_sending_limit_is_quota_exhausted_in_sparkposts_words(wire: Wire) -> None:
    wire.state.fail_next("sparkpost", 420)

    with pytest.raises(QuotaExhausted, match=r"Exceed Sending Limit \(hourly\) \(code 2101\) \(HTTP 420\)"):
        wire.send("sparkpost", messages(3))
    assert wire.state.sent_count() == 0


def test_an_unverified_sending_domain_is_rejected_with_its_code(wire: Wire) -> None:
    wire.state.reject_sender("news@example.com")

    with pytest.raises(Rejected, match="Unconfigured or unverified sending domain. \\(code 7001\\)"):
        wire.send("sparkpost", messages(2))


def test_no_valid_recipient_refuses_every_recipient(wire: Wire) -> None:
    no_one = {"errors": [{"message": "At least one valid recipient is required", "code": 5002}]}
    wire.state.answer_next("sparkpost", json_reply(400, no_one))

    deliveries = wire.send("sparkpost", messages(2))

    assert [delivery.ok for delivery in deliveries] == [False, False]
    assert deliveries[1].error == (
        "sparkpost refused reader1@example.org: At least one valid recipient is required (code 5002) (HTTP 400)"
    )


def test_every_recipient_rejected_is_every_recipient_refused(wire: Wire) -> None:
    for index in range(3):
        wire.state.reject_recipient(f"reader{index}@example.org")

    deliveries = wire.send("sparkpost", messages(3))

    assert not any(delivery.ok for delivery in deliveries)
    assert "invalid recipient address.email: reader1@example.org (code 1300)" in deliveries[1].error
    assert wire.state.sent_count() == 0


def _answer(accepted: int, rejected: int, errors: list[dict]) -> Reply:
    results = {"total_accepted_recipients": accepted, "total_rejected_recipients": rejected, "id": "4818967372"}
    return json_reply(200, {"results": {**results, "rcpt_to_errors": errors}})


def test_rejections_the_errors_do_not_name_leave_the_call_unknown(wire: Wire) -> None:
    missing = {"message": "required field is missing", "description": "address.email is required", "code": "1400"}
    wire.state.answer_next("sparkpost", _answer(2, 1, [missing]))

    with pytest.raises(Ambiguous, match="accepted 2 and refused 1 of 3 recipients without saying which") as caught:
        wire.send("sparkpost", messages(3))
    assert "address.email is required" in str(caught.value)


def test_rejections_that_name_nobody_of_the_call_leave_it_unknown(wire: Wire) -> None:
    stranger = {"message": "invalid data format/type", "description": "invalid recipient address.email: x@y"}
    wire.state.answer_next("sparkpost", _answer(2, 1, [stranger]))

    with pytest.raises(Ambiguous):
        wire.send("sparkpost", messages(3))


@pytest.mark.parametrize(
    "results",
    [
        {},
        {"total_accepted_recipients": 1, "total_rejected_recipients": 0},
        {"total_accepted_recipients": "1", "total_rejected_recipients": 0, "id": "1"},
        {"total_accepted_recipients": True, "total_rejected_recipients": 0, "id": "1"},
        {"total_accepted_recipients": 1, "total_rejected_recipients": 0, "id": ""},
    ],
)
def test_a_success_without_the_documented_results_is_ambiguous(wire: Wire, results: dict) -> None:
    wire.state.answer_next("sparkpost", json_reply(200, {"results": results}))

    with pytest.raises(Ambiguous, match="is not sparkpost's JSON"):
        wire.send("sparkpost", messages(1))


def test_a_batch_too_large_is_refused_for_halving_and_a_message_too_large_is_rejected(wire: Wire) -> None:
    too_large = {"errors": [{"message": "Substitution data too large", "code": "2002"}]}
    wire.state.answer_next("sparkpost", json_reply(422, too_large))
    with pytest.raises(BatchRefused, match="because of its size"):
        wire.send("sparkpost", messages(2))

    wire.state.answer_next("sparkpost", json_reply(413, {"errors": [{"message": "Request Entity Too Large"}]}))
    with pytest.raises(Rejected, match="Request Entity Too Large"):
        wire.send("sparkpost", messages(1))


# --- webhooks -------------------------------------------------------------------------------

AUTH = basic(SPARKPOST_USER, SPARKPOST_PASSWORD)


def test_sparkpost_batches(client: TestClient, db: psycopg.Connection, ids: dict[str, int]) -> None:
    def send_id(name: str) -> str:
        return f"12-{ids[name]}"

    batch = [
        {"msys": {}},
        sparkpost_event("message_event", "delivery", "ana@example.com", send_id("ana")),
        sparkpost_event(
            "message_event", "bounce", "bob@example.com", send_id("bob"), bounce_class="10", raw_reason="550 5.1.1"
        ),
        sparkpost_event("message_event", "out_of_band", "carl@example.com", send_id("carl"), bounce_class="22"),
        sparkpost_event("message_event", "spam_complaint", "dan@example.com", send_id("dan"), fbtype="abuse"),
        sparkpost_event("unsubscribe_event", "link_unsubscribe", "eve@example.com", send_id("eve")),
        sparkpost_event("track_event", "open", "ana@example.com", send_id("ana")),
        sparkpost_event("message_event", "delay", "ana@example.com", send_id("ana"), bounce_class="21"),
        sparkpost_event("message_event", "bounce", "ana@example.com", send_id("ana"), bounce_class="60"),
    ]

    response = client.post("/webhooks/sparkpost", content=json.dumps(batch), headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": 5, "duplicates": 0, "ignored": 4}
    assert sorted(events(db)) == [
        ("sparkpost", "complaint", "dan@example.com", 12, ids["dan"], None),
        ("sparkpost", "delivered", "ana@example.com", 12, ids["ana"], None),
        ("sparkpost", "hard_bounce", "bob@example.com", 12, ids["bob"], "550 5.1.1"),
        ("sparkpost", "soft_bounce", "carl@example.com", 12, ids["carl"], None),
        ("sparkpost", "unsubscribe", "eve@example.com", 12, ids["eve"], None),
    ]
    assert {email: source for email, (source, _) in blacklisted(db).items()} == {
        "bob@example.com": "hard_bounce",
        "dan@example.com": "complaint",
        "eve@example.com": "unsubscribe",
    }


def test_the_test_ping_is_answered_200(client: TestClient, db: psycopg.Connection) -> None:
    # SparkPost refuses to create a webhook whose target does not answer its ping with 200.
    response = client.post("/webhooks/sparkpost", content=b'[{"msys": {}}]', headers=AUTH)

    assert response.status_code == 200 and response.json()["ignored"] == 1
    assert nothing_recorded(db)


@pytest.mark.parametrize(
    "headers",
    [
        basic(SPARKPOST_USER, "wrong-password"),
        basic("someone", SPARKPOST_PASSWORD),
        {"authorization": f"Bearer {SPARKPOST_PASSWORD}"},
        {"authorization": "Basic not-base64!"},
        {},
    ],
)
def test_sparkpost_without_its_basic_auth_is_401(client: TestClient, db: psycopg.Connection, headers: dict) -> None:
    batch = [sparkpost_event("message_event", "bounce", "bob@example.com", "12-2", bounce_class="10")]

    assert client.post("/webhooks/sparkpost", json=batch, headers=headers).status_code == 401
    assert nothing_recorded(db)
    assert client.post("/webhooks/sparkpost", json=batch, headers=AUTH).status_code == 200


# --- webhook payloads, without HTTP or database -------------------------------------------


@pytest.mark.parametrize(
    ("bounce_class", "expected"),
    [
        ("10", "hard_bounce"),
        ("25", "hard_bounce"),
        ("30", "hard_bounce"),
        ("90", "hard_bounce"),
        (10, "hard_bounce"),
        ("1", "soft_bounce"),
        ("20", "soft_bounce"),
        ("21", "soft_bounce"),
        ("40", "soft_bounce"),
        ("50", "soft_bounce"),
        ("51", "soft_bounce"),
        ("70", "soft_bounce"),
        (None, "soft_bounce"),
        ("60", None),
        ("80", None),
        ("100", None),
    ],
)
def test_sparkpost_bounce_classes(bounce_class: str | int | None, expected: str | None) -> None:
    item = sparkpost_event("message_event", "bounce", "a@example.com", None)
    item["msys"]["message_event"]["bounce_class"] = bounce_class

    parsed = sparkpost.events(body([item]), NOW)

    assert [each.event for each in parsed.events] == ([] if expected is None else [expected])
    assert parsed.ignored == (1 if expected is None else 0)


def test_sparkpost_event_ids_and_times() -> None:
    item = sparkpost_event("message_event", "delivery", "A@Example.com", "12-1", event_id="92356927693813856")
    iso = sparkpost_event("message_event", "delivery", "a@example.com", None, timestamp="2025-11-28T08:30:00.000+01:00")
    undated = sparkpost_event("message_event", "delivery", "a@example.com", None)
    del undated["msys"]["message_event"]["timestamp"], undated["msys"]["message_event"]["event_id"]

    first, second, third = sparkpost.events(body([item, iso, undated]), NOW).events

    assert (first.event_id, first.email, first.send_id) == ("92356927693813856", "a@example.com", "12-1")
    assert first.occurred_at.isoformat() == "2025-11-28T08:30:00+00:00"
    assert second.occurred_at == datetime(2025, 11, 28, 7, 30, tzinfo=UTC) and second.send_id is None
    assert third.occurred_at == NOW and third.event_id.startswith("sha256:")


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"msys": {}}, "not a JSON array"),
        (["delivery"], "event 0 is not a JSON object"),
        ([{"cust": {"id": "1"}}], "event 0: msys is missing"),
        ([{"msys": []}], "event 0: msys is not an object"),
        ([{"msys": {"message_event": {}, "track_event": {}}}], "event 0: msys holds 2 event classes"),
        ([{"msys": {"message_event": "delivery"}}], "event 0: msys.message_event is not an object"),
        ([{"msys": {"message_event": {"rcpt_to": "a@example.com"}}}], "event 0: type is missing"),
        ([{"msys": {"message_event": {"type": "delivery"}}}], "event 0: the recipient"),
        ([{"msys": {"message_event": {"type": "bounce", "bounce_class": [10]}}}], "bounce_class is not a number"),
        ([{"msys": {"message_event": {"type": "delivery", "rcpt_to": "a@x", "timestamp": "soon"}}}], "not a time"),
    ],
)
def test_sparkpost_malformed_batches(document: object, words: str) -> None:
    with pytest.raises(MalformedPayload, match=words):
        sparkpost.events(body(document), NOW)
