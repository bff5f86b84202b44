"""_merge.factor: shared literals plus small per-text values that rebuild every text exactly."""

from __future__ import annotations

import random

import pytest

from campaign_pipelines.providers._merge import factor


def _rebuilds(texts: list[str], max_slots: int = 50) -> None:
    merged = factor(texts, max_slots=max_slots)
    assert [merged.rebuild(index) for index in range(len(texts))] == texts
    assert merged.slots <= max_slots
    assert all(len(values) == merged.slots for values in merged.values)


def test_identical_texts_have_no_slot() -> None:
    merged = factor(["same\n", "same\n"], max_slots=5)

    assert merged.literals == ["same\n"] and merged.values == [[], []]


def test_only_what_differs_stays_per_text() -> None:
    texts = [
        f"<p>Hello {name},</p>\n<p>news</p>\n<a href='/u/{token}'>x</a>\n" for name, token in [("Al", 1), ("Bo", 22)]
    ]

    merged = factor(texts, max_slots=5)

    assert merged.values == [["Al", "1"], ["Bo", "22"]]
    assert merged.literals == ["<p>Hello ", ",</p>\n<p>news</p>\n<a href='/u/", "'>x</a>\n"]


def test_texts_with_different_line_counts_share_prefix_and_suffix() -> None:
    texts = ["head\nA\nB\ntail", "head\nC\ntail"]

    merged = factor(texts, max_slots=5)

    assert merged.literals == ["head\n", "\ntail"]
    assert merged.values == [["A\nB"], ["C"]]


def test_too_many_slots_collapse_into_one() -> None:
    texts = ["".join(f"{chr(97 + i)}{k}\n=\n" for i in range(10)) for k in range(3)]

    merged = factor(texts, max_slots=4)

    assert merged.slots == 1
    _rebuilds(texts, max_slots=4)


@pytest.mark.parametrize("seed", range(30))
def test_random_texts_always_rebuild(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = ["a", "b", "\n", "é", "\r\n", "x"]
    base = [rng.choice(alphabet) for _ in range(rng.randrange(0, 40))]
    texts = []
    for _ in range(rng.randrange(1, 6)):
        text = list(base)
        for _ in range(rng.randrange(0, 4)):
            if text:
                text[rng.randrange(len(text))] = rng.choice(alphabet)
        texts.append("".join(text))
    _rebuilds(texts, max_slots=rng.randrange(1, 6))
