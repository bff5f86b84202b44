"""Amazon SES's wire format: SigV4-signed SendEmail and SendBulkEmail with an inline template of
placeholders, per-destination statuses, REST-JSON errors; SNS-signed events and subscriptions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import psycopg
import pytest
from starlette.testclient import TestClient

from campaign_pipelines import providers
from campaign_pipelines.providers import (
    Ambiguous,
    AuthFailed,
    Delivery,
    OutgoingMessage,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Rejected,
    deliver,
)
from campaign_pipelines.providers.ses.send import MAX_TEMPLATE_DATA, endpoint
from campaign_pipelines.providers.ses.webhook import TEST_CERT_HOST_ENV, TOPICS_ENV, SesWebhook, events
from campaign_pipelines.providers.webhook import MalformedPayload, Refused
from tests.fakes.providers import Reply
from tests.fakes.providers.base import json_reply
from tests.fakes.providers.ses import (
    CERT_PATH,
    FAKE,
    KEY_ID,
    OTHER_KEY,
    SNS,
    TOPIC_ARN,
    confirmation,
    notification,
    ses_event,
    sign,
    sns_headers,
)
from tests.providers.support import SENDER, Recorder, Wire, message, messages
from tests.providers.webhook_support import NOW, blacklisted, nothing_recorded
from tests.providers.webhook_support import events as recorded

# --- sending ---------------------------------------------------------------------------------


def test_single_send_is_a_signed_send_email_with_simple_content_and_the_send_id_tag(recorder: Recorder) -> None:
    [delivery] = recorder.send("ses", [message(1)])

    request = recorder.requests[0]
    assert request.url.path == "/v2/email/outbound-emails"
    authorization = request.headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert "/us-east-1/ses/aws4_request" in authorization and "x-amz-date" in request.headers
    body = recorder.json()
    assert body["FromEmailAddress"] == "Acme News <news@example.com>"
    assert body["Destination"] == {"ToAddresses": ["reader1@example.org"]}
    assert body["EmailTags"] == [{"Name": "send_id", "Value": "c7-r1"}]
    simple = body["Content"]["Simple"]
    assert simple["Subject"] == {"Data": "March update for reader 1", "Charset": "UTF-8"}
    assert {"Name": "List-Unsubscribe", "Value": "<https://t.example.com/u/tok1>"} in simple["Headers"]
    assert delivery.provider_message_id == recorder.state.messages()[0].message_id


def test_batch_is_one_bulk_call_whose_template_is_placeholders_and_whose_data_is_each_message(
    recorder: Recorder,
) -> None:
    batch = [*messages(2), message(2, html='<p>{{not a variable}} & "quotes"</p>', subject="Tom & Jerry")]

    deliveries = recorder.send("ses", batch)

    assert recorder.requests[0].url.path == "/v2/email/outbound-bulk-emails"
    body = recorder.json()
    template = body["DefaultContent"]["Template"]["TemplateContent"]
    assert template == {"Subject": "{{subject}}", "Html": "{{html}}", "Text": "{{text}}"}
    entries = body["BulkEmailEntries"]
    assert [
        json.loads(entry["ReplacementEmailContent"]["ReplacementTemplate"]["ReplacementTemplateData"])
        for entry in entries
    ] == [{"subject": sent.subject, "html": sent.html, "text": sent.text} for sent in batch]
    assert [entry["ReplacementTags"] for entry in entries] == [
        [{"Name": "send_id", "Value": sent.send_id}] for sent in batch
    ]
    assert all(len(entry["ReplacementHeaders"]) == 2 for entry in entries)
    # Values are not templates: braces, ampersands and quotes arrive as rendered.
    received = {each.to: each for each in recorder.state.messages()}
    assert (received["reader2@example.org"].subject, received["reader2@example.org"].html) == (
        batch[2].subject,
        batch[2].html,
    )
    assert [delivery.provider_message_id for delivery in deliveries] == [
        received[sent.to_email].message_id for sent in batch
    ]


def test_a_bulk_call_without_any_text_has_no_text_part(recorder: Recorder) -> None:
    recorder.send("ses", [message(0, text=""), message(1, text="")])

    assert "Text" not in recorder.json()["DefaultContent"]["Template"]["TemplateContent"]


def test_a_message_over_the_template_data_limit_goes_alone_through_send_email(recorder: Recorder) -> None:
    provider = providers.get("ses")
    big = message(3, html=f"<p>{'x' * MAX_TEMPLATE_DATA}</p>")
    batch = [*messages(3), big]

    calls = provider.split(batch)

    assert [[sent.send_id for sent in call] for call in calls] == [["c7-r3"], ["c7-r0", "c7-r1", "c7-r2"]]
    [delivery] = recorder.send("ses", [big])
    assert delivery.ok and recorder.requests[0].url.path == "/v2/email/outbound-emails"


@pytest.mark.parametrize(
    ("url", "base", "region"),
    [
        ("https://email.eu-west-3.amazonaws.com", "https://email.eu-west-3.amazonaws.com", "eu-west-3"),
        (
            "https://email-fips.us-gov-west-1.amazonaws.com/",
            "https://email-fips.us-gov-west-1.amazonaws.com",
            "us-gov-west-1",
        ),
        ("https://ses-proxy.example.com/aws?region=ap-south-1", "https://ses-proxy.example.com/aws", "ap-south-1"),
    ],
)
def test_the_region_comes_from_the_endpoint(url: str, base: str, region: str) -> None:
    assert endpoint(url) == (base, region)


def test_an_endpoint_naming_no_region_is_rejected_before_sending(recorder: Recorder) -> None:
    with pytest.raises(Rejected, match="names no AWS region"):
        recorder.send("ses", messages(2), url="https://ses-proxy.example.com")
    assert recorder.requests == []


def test_calls_are_signed_for_the_endpoints_region(recorder: Recorder) -> None:
    recorder.send("ses", messages(2), url="https://email.eu-west-3.amazonaws.com")

    assert "/eu-west-3/ses/aws4_request" in recorder.requests[0].headers["authorization"]
    assert recorder.requests[0].url.host == "email.eu-west-3.amazonaws.com"


def test_a_wrong_secret_is_refused_by_the_signature_check_and_never_quoted(recorder: Recorder) -> None:
    with pytest.raises(AuthFailed, match="SignatureDoesNotMatch") as caught:
        recorder.send("ses", messages(2), api_key=f"{KEY_ID}:wrong/s3cr3t+value")

    assert "s3cr3t" not in str(caught.value) and "x-amzn" not in str(caught.value)
    assert recorder.state.sent_count() == 0


@pytest.mark.parametrize("key", ["AKIAFAKE0000EXAMPLE1", "short:secret", f"{KEY_ID}:with space", f"{KEY_ID}:"])
def test_a_key_that_is_not_an_access_key_pair_is_refused_before_sending(recorder: Recorder, key: str) -> None:
    with pytest.raises(AuthFailed, match="ACCESS_KEY_ID:SECRET_ACCESS_KEY") as caught:
        recorder.send("ses", messages(1), api_key=key)

    assert key not in str(caught.value) and recorder.requests == []


def _error(status: int, kind: str, said: str) -> Reply:
    return json_reply(status, {"message": said}, {"x-amzn-errortype": f"{kind}:", "x-amzn-requestid": "req-42"})


@pytest.mark.parametrize(
    ("reply", "expected", "words"),
    [
        (_error(400, "AccountSuspendedException", "Account suspended."), QuotaExhausted, "may not send now"),
        (_error(400, "SendingPausedException", "Sending paused for this account."), QuotaExhausted, "may not send"),
        (_error(429, "TooManyRequestsException", "Daily message quota exceeded."), QuotaExhausted, "daily quota"),
        (_error(400, "LimitExceededException", "Maximum sending rate exceeded."), RateLimited, "rate limited"),
        (_error(400, "MailFromDomainNotVerifiedException", "MAIL FROM domain not verified"), Rejected, "the sender"),
        (_error(404, "NotFoundException", "Configuration set <x> does not exist."), Rejected, "refused the request"),
        (_error(403, "AccessDeniedException", "not authorized to perform ses:SendEmail"), AuthFailed, "permissions"),
    ],
)
def test_ses_error_types_map_to_our_family_with_the_request_id(
    wire: Wire, reply: Reply, expected: type, words: str
) -> None:
    wire.state.answer_next("ses", reply)

    with pytest.raises(expected, match=words) as caught:
        wire.send("ses", messages(2))

    assert "[request req-42]" in str(caught.value)


def test_a_recipient_named_by_message_rejected_refuses_the_batch_to_be_halved(wire: Wire) -> None:
    wire.state.answer_next("ses", _error(400, "MessageRejected", "Illegal address: reader1@example.org"))

    deliveries = _deliver(wire, messages(3))

    assert all(delivery.ok for delivery in deliveries)
    assert [call.path for call in wire.state.calls("ses")] == [
        "/v2/email/outbound-bulk-emails",
        "/v2/email/outbound-emails",
        "/v2/email/outbound-bulk-emails",
    ]


def _deliver(wire: Wire, batch: list[OutgoingMessage]) -> list[Delivery]:
    """deliver(), its retries included, without sleeping."""
    return deliver(
        wire.client,
        providers.get("ses"),
        url=wire.urls["ses"],
        api_key=FAKE.api_key,
        sender=SENDER,
        messages=batch,
        sleep=lambda seconds: None,
    )


def _bulk(*entries: dict[str, str]) -> Reply:
    return json_reply(200, {"BulkEmailEntryResults": list(entries)}, {"x-amzn-requestid": "req-7"})


_OK = {"Status": "SUCCESS", "MessageId": "0100018c-ok"}


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([{"Status": "ACCOUNT_DAILY_QUOTA_EXCEEDED", "Error": "Daily quota exceeded"}] * 2, QuotaExhausted),
        ([{"Status": "ACCOUNT_SENDING_PAUSED"}] * 2, QuotaExhausted),
        ([{"Status": "MAIL_FROM_DOMAIN_NOT_VERIFIED"}] * 2, Rejected),
        ([{"Status": "ACCOUNT_THROTTLED"}] * 2, RateLimited),
        ([_OK, {"Status": "SOMETHING_NEW"}], Ambiguous),
        ([_OK, {"Status": "SUCCESS"}], Ambiguous),
    ],
)
def test_bulk_statuses_about_the_account_fail_the_call(wire: Wire, entries: list[dict], expected: type) -> None:
    wire.state.answer_next("ses", _bulk(*entries))

    with pytest.raises(expected) as caught:
        wire.send("ses", messages(2))

    assert "[request req-7]" in str(caught.value)
    assert [delivery.ok for delivery in caught.value.done] == [True] * sum(entry == _OK for entry in entries)


def test_a_bulk_answer_with_a_result_missing_is_unknown(wire: Wire) -> None:
    wire.state.answer_next("ses", _bulk(_OK))

    with pytest.raises(Ambiguous, match="may have been sent"):
        wire.send("ses", messages(2))


def test_destinations_deferred_beside_sent_ones_are_not_retried_with_them(wire: Wire) -> None:
    wire.state.answer_next("ses", _bulk(_OK, {"Status": "TRANSIENT_FAILURE", "Error": "Try again"}, _OK))

    with pytest.raises(ProviderError) as caught:
        _deliver(wire, messages(3))

    assert type(caught.value) is ProviderError and "1 of the batch were deferred" in str(caught.value)
    assert [delivery.send_id for delivery in caught.value.done] == ["c7-r0", "c7-r2"]
    assert len(wire.state.calls("ses")) == 1, "a retry would send c7-r0 and c7-r2 again"


def test_a_refused_destination_fails_alone_in_the_providers_words(wire: Wire) -> None:
    wire.state.answer_next(
        "ses", _bulk(_OK, {"Status": "MESSAGE_REJECTED", "Error": "Email address is on the suppression list"})
    )

    deliveries = wire.send("ses", messages(2))

    assert deliveries[0].ok
    assert not deliveries[1].ok
    assert (
        deliveries[1].error
        == "ses refused reader1@example.org: Email address is on the suppression list (MESSAGE_REJECTED)"
    )


# --- webhooks through the routes -------------------------------------------------------------


def _post(client: TestClient, message: dict) -> object:
    return client.post("/webhooks/ses", content=orjson.dumps(message), headers=sns_headers(message))


def test_ses_events_are_recorded_with_their_blacklist_effects(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int]
) -> None:
    bounce = ses_event("hard_bounce", "bob@example.com", f"12-{ids['bob']}")
    bounce["bounce"]["bouncedRecipients"].append({"emailAddress": "carl@example.com", "diagnosticCode": "smtp; 550"})
    opened = {**ses_event("delivered", "ana@example.com", None), "eventType": "Open", "open": {}}

    first = _post(client, sign(notification(bounce)))
    second = _post(client, sign(notification(opened)))

    assert first.status_code == 200 and first.json() == {"recorded": 2, "duplicates": 0, "ignored": 0}
    assert second.json() == {"recorded": 0, "duplicates": 0, "ignored": 1}
    assert recorded(db) == [
        ("ses", "hard_bounce", "bob@example.com", 12, ids["bob"], "smtp; 550 5.1.1 user unknown"),
        # The send id is bob's: carl's event is kept by its address alone.
        ("ses", "hard_bounce", "carl@example.com", None, None, "smtp; 550"),
    ]
    assert set(blacklisted(db)) == {"bob@example.com", "carl@example.com"}


def test_signature_version_2_is_accepted(client: TestClient, db: psycopg.Connection) -> None:
    response = _post(client, sign(notification(ses_event("complaint", "dan@example.com", "12-4")), version="2"))

    assert response.status_code == 200 and len(recorded(db)) == 1


def _forged() -> list[dict]:
    event = notification(ses_event("hard_bounce", "bob@example.com", "12-2"))
    good = sign(event)
    return [
        sign(event, OTHER_KEY),  # signed by someone else
        {**good, "Message": good["Message"].replace("bob@", "ann@")},  # changed after signing
        {**good, "Signature": "bm90IGEgc2lnbmF0dXJl"},  # not this message's signature
        {**good, "SignatureVersion": "3"},  # no such version
        sign(
            notification(
                ses_event("hard_bounce", "bob@example.com", "12-2"), "arn:aws:sns:us-east-1:999999999999:theirs"
            )
        ),
        sign(event, cert_url="https://evil.example.com/SimpleNotificationService-x.pem"),
        sign(
            event, cert_url="https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem"
        ),  # not the topic's region
        sign(event, cert_url=f"https://{SNS.host}{CERT_PATH}"),  # https on the test host: not SNS
    ]


def test_a_message_that_is_not_signed_by_sns_for_our_topic_is_401_and_records_nothing(
    client: TestClient, db: psycopg.Connection
) -> None:
    for number, forged in enumerate(_forged()):
        response = _post(client, forged)
        assert response.status_code == 401, (number, response.text)
    # A fetch from the other hosts would have failed (no such host, no TLS there): 503, not 401.
    assert nothing_recorded(db)


def test_a_subscription_confirmation_for_our_topic_is_confirmed(client: TestClient, db: psycopg.Connection) -> None:
    request = confirmation()

    response = _post(client, sign(request))

    assert response.status_code == 200 and response.json() == {"recorded": 0, "duplicates": 0, "ignored": 0}
    assert any(f"Token={request['Token']}" in path for path in SNS.requests)
    assert nothing_recorded(db)


def test_a_subscription_confirmation_for_another_topic_is_refused(client: TestClient) -> None:
    request = confirmation("arn:aws:sns:us-east-1:999999999999:theirs")

    assert _post(client, sign(request)).status_code == 401
    assert not any(f"Token={request['Token']}" in path for path in SNS.requests)


# --- the webhook without HTTP routes ----------------------------------------------------------


@pytest.fixture
def settings():
    FAKE.webhook_environment()
    return SesWebhook().configure({TOPICS_ENV: TOPIC_ARN})


def test_certificates_are_fetched_once_per_url(settings) -> None:
    webhook = SesWebhook()
    fetched = len(SNS.requests)
    for kind in ("delivered", "complaint"):
        body = orjson.dumps(sign(notification(ses_event(kind, "ana@example.com", "12-1"))))
        webhook.receive(settings, {}, body, datetime.now(UTC))

    assert SNS.requests[fetched:] == [CERT_PATH]


def test_a_certificate_that_cannot_be_fetched_is_503_for_sns_to_retry(settings) -> None:
    body = orjson.dumps(
        sign(notification(ses_event("delivered", "a@example.com", None)), cert_url=f"http://{SNS.host}/gone.pem")
    )

    with pytest.raises(Refused) as caught:
        SesWebhook().receive(settings, {}, body, datetime.now(UTC))

    assert caught.value.status == 503


@pytest.mark.parametrize("body", [b"[1]", b'{"Type": "Gossip"}', b'{"Signature": "x"}'])
def test_a_body_that_is_not_an_sns_message_is_malformed(settings, body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        SesWebhook().receive(settings, {}, body, datetime.now(UTC))


def test_configure_names_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=f"^{TOPICS_ENV} must be SNS topic ARNs"):
        SesWebhook().configure({TOPICS_ENV: f"{TOPIC_ARN}, not-an-arn"})
    monkeypatch.setenv(TEST_CERT_HOST_ENV, "certs.example.com:80")
    with pytest.raises(ValueError, match=f"^{TEST_CERT_HOST_ENV} may only name a loopback"):
        SesWebhook().configure({TOPICS_ENV: TOPIC_ARN})
    monkeypatch.delenv(TEST_CERT_HOST_ENV)
    two = SesWebhook().configure({TOPICS_ENV: f"{TOPIC_ARN},arn:aws:sns:eu-west-3:123456789012:other"})
    assert len(two.topics) == 2 and two.test_host is None


# --- SES event payloads ------------------------------------------------------------------------


def _events(event: dict):
    return events(json.dumps(event), NOW)


def test_bounce_types() -> None:
    soft = _events(ses_event("soft_bounce", "a@example.com", "12-1"))
    undetermined = ses_event("hard_bounce", "b@example.com", "12-2")
    undetermined["bounce"]["bounceType"] = "Undetermined"

    assert [(event.event, event.detail) for event in soft.events] == [("soft_bounce", "smtp; 452 4.2.2 mailbox full")]
    assert [event.event for event in _events(undetermined).events] == ["soft_bounce"]


def test_an_identity_notification_has_no_tags_and_is_matched_by_address() -> None:
    event = ses_event("complaint", "a@example.com", None)
    event["notificationType"] = event.pop("eventType")
    del event["mail"]["tags"]

    [complaint] = _events(event).events

    assert (complaint.event, complaint.send_id, complaint.detail) == ("complaint", None, "abuse")


def test_a_subscription_change_that_is_not_an_unsubscribe_is_ignored() -> None:
    event = ses_event("unsubscribe", "a@example.com", "12-1")
    event["subscription"]["newTopicPreferences"] = {"unsubscribeAll": False}

    assert _events(event).ignored == 1 and _events(event).events == []


def test_copies_of_an_event_share_its_id_and_recipients_have_their_own() -> None:
    event = ses_event("hard_bounce", "a@example.com", "12-1")
    event["bounce"]["bouncedRecipients"].append({"emailAddress": "b@example.com"})

    first, second = _events(event).events

    assert first.event_id != second.event_id
    assert [each.event_id for each in _events(event).events] == [first.event_id, second.event_id]
    assert first.occurred_at == datetime(2025, 11, 28, 8, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda event: event.pop("eventType"), "eventType is missing"),
        (lambda event: event["delivery"].update(recipients=[]), "recipients is not a list of recipients"),
        (lambda event: event["delivery"].update(recipients=[7]), "something other than addresses"),
        (lambda event: event["delivery"].update(timestamp="yesterday"), "not an ISO 8601 time"),
    ],
)
def test_a_malformed_ses_event_says_what_is_wrong(change, words: str) -> None:
    event = ses_event("delivered", "a@example.com", "12-1")
    change(event)

    with pytest.raises(MalformedPayload, match=words):
        _events(event)


def test_a_message_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match="not JSON"):
        events("not json", NOW)
