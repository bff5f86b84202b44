"""The tracking resource: the tracking app's URL and secret, refused when they would break a header."""

from __future__ import annotations

import pytest

from campaign_pipelines.errors import ValidationError
from campaign_pipelines.resources.tracking import TrackingResource


def test_the_tracking_resource_refuses_values_that_would_break_its_headers() -> None:
    resource = TrackingResource(
        base_url="https://t.example.com\r\nBcc: evil@attacker.example",
        secret="s",
        unsubscribe_mailto="unsubscribe@example.com",
        feedback_sender_id="acme\n",
    )

    with pytest.raises(ValidationError) as caught:
        resource.config()

    assert caught.value.what == "tracking resource"
    assert [problem.split(" contains ")[0] for problem in caught.value.problems] == ["base_url", "feedback_sender_id"]
    assert TrackingResource(base_url="https://t.example.com", secret="s").config().base_url == "https://t.example.com"


def test_the_tracking_settings_hold_the_secret_as_bytes_and_empty_options_as_none() -> None:
    tracking = TrackingResource(base_url="https://t.example.com", secret="s3cret").config()

    assert (tracking.secret, tracking.unsubscribe_mailto, tracking.feedback_sender_id) == (b"s3cret", None, None)
    full = TrackingResource(
        base_url="https://t.example.com", secret="s", unsubscribe_mailto="u@example.com", feedback_sender_id="acme"
    ).config()
    assert (full.unsubscribe_mailto, full.feedback_sender_id) == ("u@example.com", "acme")
