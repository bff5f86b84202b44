"""What a contact file error tells a person: the file, the problem, where, and the parser's words."""

from __future__ import annotations

from pathlib import Path

from campaign_pipelines.contacts.file_errors import EMPTY, NOT_JSON, ContactFileError


def test_the_message_names_the_file_the_problem_the_offset_and_the_detail() -> None:
    error = ContactFileError(Path("/data/contacts/clients_vip.json"), 1234, NOT_JSON, "unexpected ']'")

    assert str(error) == "contact file 'clients_vip.json' is not valid JSON at byte offset 1234: unexpected ']'"
    assert (error.offset, error.problem, error.detail) == (1234, NOT_JSON, "unexpected ']'")


def test_a_problem_no_byte_is_to_blame_for_names_no_offset() -> None:
    assert str(ContactFileError(Path("empty.ndjson"), None, EMPTY)) == "contact file 'empty.ndjson' is empty"
