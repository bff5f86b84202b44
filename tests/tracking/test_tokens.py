"""Tracking tokens: round trip, and every forgery or mutation refused."""

from __future__ import annotations

import pytest

from campaign_pipelines.tracking.tokens import TOKEN_LENGTH, make_token, read_token

SECRET = b"tracking-secret"


def test_a_token_reads_back_its_ids() -> None:
    token = make_token(SECRET, 12, 987_654_321)
    assert len(token) == TOKEN_LENGTH
    assert read_token(SECRET, token) == (12, 987_654_321)


def test_another_secret_cannot_read_or_make_tokens() -> None:
    assert read_token(b"other", make_token(SECRET, 1, 2)) is None
    assert read_token(SECRET, make_token(b"other", 1, 2)) is None


@pytest.mark.parametrize("position", range(TOKEN_LENGTH))
def test_every_single_character_change_is_refused(position: int) -> None:
    token = make_token(SECRET, 5, 6)
    for replacement in "AQgw_-9z":
        if replacement != token[position]:
            mutated = token[:position] + replacement + token[position + 1 :]
            assert read_token(SECRET, mutated) is None, mutated


@pytest.mark.parametrize("garbage", ["", "x", "A" * TOKEN_LENGTH, "é" * TOKEN_LENGTH, "%" * TOKEN_LENGTH])
def test_garbage_is_refused(garbage: str) -> None:
    assert read_token(SECRET, garbage) is None


def test_other_base64_spellings_of_a_genuine_token_are_refused() -> None:
    token = make_token(SECRET, 1, 4007)  # holds a "_"
    assert {"-", "_"} & set(token)
    standard = token.replace("-", "+").replace("_", "/")
    assert read_token(SECRET, standard) is None
    assert read_token(SECRET, token[:10] + "\n" + token[10:-1]) is None
