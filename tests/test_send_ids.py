"""campaign_pipelines.send_ids: the send id we give each message and read back from webhooks."""

from __future__ import annotations

import pytest

from campaign_pipelines.send_ids import parse_send_id, send_id


def test_a_send_id_reads_back_as_its_campaign_and_contact() -> None:
    assert send_id(12, 345) == "12-345"
    assert parse_send_id(send_id(9223372036854775807, 1)) == (9223372036854775807, 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12-345", (12, 345)),
        (" 12-345 ", (12, 345)),
        ("9223372036854775807-1", (9223372036854775807, 1)),
        ("9223372036854775808-1", None),
        ("12-", None),
        ("-345", None),
        ("0-5", None),
        ("012-5", None),
        ("12-34-56", None),
        ("12_345", None),
        ("١٢-٣٤", None),
        ("newsletter-2025", None),
        ("", None),
        (None, None),
        (12, None),
    ],
)
def test_parse_send_id_reads_only_our_own_ids(value: object, expected: tuple[int, int] | None) -> None:
    assert parse_send_id(value) == expected
