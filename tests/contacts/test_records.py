"""Record normalisation: emails trimmed and lower-cased, unusable records given a reason."""

from __future__ import annotations

import orjson
import pytest

from campaign_pipelines.contacts import records
from campaign_pipelines.contacts.reader import MAX_RECORD_BYTES, TOO_LARGE


def test_email_is_trimmed_lowercased_and_removed_from_attributes() -> None:
    email, attributes = records.to_contact({"email": "  Jean.Dupont@Example.COM ", "first_name": "Jean"})
    assert email == "jean.dupont@example.com"
    assert orjson.loads(attributes) == {"first_name": "Jean"}


def test_email_key_variants_are_accepted() -> None:
    assert records.to_contact({"Email": "a@example.com"})[0] == "a@example.com"
    assert records.to_contact({"EMAIL": "a@example.com"})[0] == "a@example.com"


@pytest.mark.parametrize(
    "address",
    [
        "a@b.co",
        "o'hara+news@mail.example.fr",
        "x.y-z_1@a-b.example",
        "a@" + "b" * 63 + ".example",
        "a@9.example.c9",
    ],
)
def test_addresses_providers_accept_are_valid(address: str) -> None:
    assert records.normalize_email(address) == address


@pytest.mark.parametrize(
    "address",
    [
        ".a@example.com",
        "a.@example.com",
        "a..b@example.com",
        "a@.example.com",
        "a@example..com",
        "a@example.com.",
        "a@-example.com",
        "a@example-.com",
        "a@example.-com",
        "a@example.com-",
        "a@" + "b" * 64 + ".example",
        "a@exa_mple.com",
        "é@example.com",
    ],
)
def test_addresses_with_broken_syntax_are_invalid(address: str) -> None:
    assert records.normalize_email(address) is None


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"name": "no email"}, records.MISSING_EMAIL),
        ({"email": "   "}, records.MISSING_EMAIL),
        ({"email": 42}, records.MISSING_EMAIL),
        ({"email": "not-an-address"}, records.INVALID_EMAIL),
        ({"email": "a@@example.com"}, records.INVALID_EMAIL),
        ({"email": "a@localhost"}, records.INVALID_EMAIL),
        ({"email": "a b@example.com"}, records.INVALID_EMAIL),
        ({"email": "x" * 250 + "@example.com"}, records.INVALID_EMAIL),
        (["a@example.com"], records.NOT_AN_OBJECT),
        ("a@example.com", records.NOT_AN_OBJECT),
        (None, records.NOT_AN_OBJECT),
        (TOO_LARGE, records.TOO_LARGE_REASON),
        ({"email": "a@example.com", "blob": "x" * MAX_RECORD_BYTES}, records.TOO_LARGE_REASON),
        ({"email": "a@example.com", "note": "nul\x00byte"}, records.NUL_CHARACTER),
    ],
)
def test_unusable_records_get_their_reason(record: object, reason: str) -> None:
    assert records.to_contact(record) == (None, reason)


def test_samples_describe_without_copying_the_record() -> None:
    record = {"email": "broken", "secret_note": "do not log me", "phone": "0600000000"}
    sample = records.sample_of(record, records.INVALID_EMAIL)
    assert "broken" in sample and "do not log me" not in sample and "0600000000" not in sample
    assert "phone" in records.sample_of({"phone": "0600000000"}, records.MISSING_EMAIL)
    assert "0600000000" not in records.sample_of({"phone": "0600000000"}, records.MISSING_EMAIL)
