"""What the commands share: whole-number and seconds arguments, and the campaign lookups."""

from __future__ import annotations

import psycopg
import pytest


@pytest.mark.parametrize(
    ("value", "said"), [("ten", "expected a whole number, got 'ten'"), ("2.5", "expected a whole number, got '2.5'"),
                        ("-1", "expected at least 1, got -1")],
)  # fmt: skip
def test_a_count_must_be_a_whole_number_of_at_least_one(run, value: str, said: str) -> None:
    code, out, err = run("blacklist", "list", "--limit", value)

    assert (code, out) == (2, "")
    assert said in err


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_seconds_must_be_a_finite_positive_number(run, value: str) -> None:
    code, out, err = run("campaign", "watch", "1", "--interval", value)

    assert (code, out) == (2, "")
    assert f"'{value}' " in err and "seconds" in err


def test_every_command_on_a_campaign_names_a_missing_one_the_same_way(db: psycopg.Connection, run) -> None:
    for command in (["status", "4242"], ["watch", "4242", "--once"], ["launch", "4242"], ["resend-unknown", "4242"]):
        assert run("campaign", *command) == (1, "", "error: campaign 4242 does not exist\n")
