"""The depth guard on raw text: the exact byte past the limit, chunk boundaries and strings aside."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_pipelines.contacts.depth import MAX_DEPTH, DepthGuard
from campaign_pipelines.contacts.file_errors import TOO_DEEP, ContactFileError

PATH = Path("contacts.json")


def _check(*chunks: bytes) -> None:
    guard, offset = DepthGuard(PATH), 0
    for chunk in chunks:
        guard.check(chunk, offset)
        offset += len(chunk)


def test_text_at_the_limit_passes_and_one_level_more_is_refused_at_its_byte() -> None:
    _check(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)

    with pytest.raises(ContactFileError) as caught:
        _check(b'{"a": ' + b"[" * MAX_DEPTH)

    assert (caught.value.problem, caught.value.offset) == (TOO_DEEP, 6 + MAX_DEPTH - 1)
    assert caught.value.detail == f"more than {MAX_DEPTH} levels of arrays and objects"


def test_the_depth_carries_over_chunk_boundaries_and_escapes_split_between_chunks() -> None:
    # A backslash ends the first chunk: the quote opening the next one is escaped, so the brackets
    # after it are still inside the string (read as structure, they would be four levels too many).
    _check(b"[" * (MAX_DEPTH - 1) + b'"\\', b'"[[[["' + b"]" * (MAX_DEPTH - 1))

    half = MAX_DEPTH // 2

    with pytest.raises(ContactFileError) as caught:
        _check(b"[" * half, b"{" * half, b"[")

    assert caught.value.offset == 2 * half


def test_brackets_inside_strings_do_not_count() -> None:
    _check(b'["' + b"[" * (3 * MAX_DEPTH) + b'", "\\"' + b"{" * MAX_DEPTH + b'"]')
