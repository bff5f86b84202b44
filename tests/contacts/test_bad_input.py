"""Bad contact files, one of each kind: what the import accepts, and the exact error it gives
for the rest (file, byte offset, reason), with the campaign's earlier contacts left intact."""

from __future__ import annotations

import gzip
from pathlib import Path

import psycopg
import pytest

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.contacts import campaign_import
from campaign_pipelines.contacts.campaign_import import import_campaign
from campaign_pipelines.contacts.depth import MAX_DEPTH
from campaign_pipelines.contacts.file_errors import ContactFileError
from campaign_pipelines.contacts.reader import iter_records
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.contacts import contacts_by_email

BOM = b"\xef\xbb\xbf"
TWO = b'[{"email": "new1@example.com", "city": "Lyon"},\n{"email": "new2@example.com"}]\n'
TWO_NDJSON = b'{"email": "new1@example.com", "city": "Lyon"}\n{"email": "new2@example.com"}\n'
BASE = b'[{"email": "kept1@example.com", "city": "Paris", "tags": ["vip"]},\n{"email": "kept2@example.com", "n": 2}]\n'


def _nested(levels: int) -> bytes:
    """A contact whose attribute `x` nests arrays so that the whole record is `levels` deep."""
    return b'{"email": "deep@example.com", "x": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


AT_LIMIT = _nested(MAX_DEPTH - 1)  # inside the top-level array: MAX_DEPTH levels in all
OVER_LIMIT = _nested(MAX_DEPTH)
# The first bracket past the limit, in a file holding `prefix` then the record.
OVER_AT = len(b'{"email": "deep@example.com", "x": ') + MAX_DEPTH - 2
DEEP = f"is nested too deeply at byte offset {{}}: more than {MAX_DEPTH} levels of arrays and objects"
NOT_A_CONTACT_FILE = (
    "is not a contact file at byte offset {}: expected a JSON array of contacts, an object holding one,"
    " or NDJSON (one contact per line)"
)
GZIP_TWO = gzip.compress(TWO)

# (file name, content, contacts added, or the error after "contact file '<name>' ")
CASES = [
    ("truncated.json", TWO[:40], "is not valid JSON at byte offset 40: parse error: premature EOF"),
    (
        "truncated_string.ndjson",
        b'{"email": "new1@exa',
        "is not valid JSON at byte offset 10: Unterminated string starting at",
    ),
    (
        "trailing_comma.json",
        TWO[:-2] + b",\n]\n",
        f"is not valid JSON at byte offset {len(TWO)}: parse error: unallowed token at this point in JSON text",
    ),
    (
        "trailing_comma_in_object.json",
        b'[{"email": "new1@example.com",}]',
        "is not valid JSON at byte offset 30: parse error: invalid object key (must be a string)",
    ),
    (
        "trailing_comma.ndjson",
        b'{"email": "new1@example.com",}\n',
        "is not valid JSON at byte offset 29: Expecting property name enclosed in double quotes",
    ),
    (
        "single_quotes.json",
        b"[{'email': 'new1@example.com'}]",
        "is not valid JSON at byte offset 2: lexical error: invalid char in json text.",
    ),
    (
        "single_quotes.ndjson",
        b"{'email': 'new1@example.com'}\n",
        "is not valid JSON at byte offset 1: Expecting property name enclosed in double quotes",
    ),
    (
        "nan.json",
        b'[{"email": "new1@example.com", "score": NaN}]\n',
        "is not valid JSON at byte offset 40: lexical error: invalid char in json text.",
    ),
    (
        "nan.ndjson",
        b'{"email": "new1@example.com", "note": "NaN", "score": NaN}\n',
        "is not valid JSON at byte offset 54: NaN is not a JSON number",
    ),
    (
        "infinity.ndjson",
        b'{"email": "new1@example.com", "score": -Infinity}\n',
        "is not valid JSON at byte offset 39: -Infinity is not a JSON number",
    ),
    (
        "control_character.json",
        b'[{"email": "new1@example.com", "name": "Ann\tLee"}]\n',
        "is not valid JSON at byte offset 43: lexical error: invalid character inside string.",
    ),
    (
        "control_character.ndjson",
        b'{"email": "new1@example.com", "name": "Ann\tLee"}\n',
        "is not valid JSON at byte offset 42: Invalid control character at",
    ),
    ("latin1.json", TWO.replace(b"Lyon", b"Besan\xe7on"), "is not UTF-8 text at byte offset 45"),
    (
        "latin1_pretty.json",
        b'[\n  {\n    "city": "Besan\xe7on",\n    "email": "a@example.com"\n  }\n]\n',
        "is not UTF-8 text at byte offset 24",
    ),
    ("latin1.ndjson", TWO_NDJSON.replace(b"Lyon", b"Besan\xe7on"), "is not UTF-8 text at byte offset 44"),
    ("latin1_key.json", b'[{"email": "new1@example.com", "vill\xe9": "Lyon"}]', "is not UTF-8 text at byte offset 36"),
    ("bom.json", BOM + TWO, 2),
    ("bom_wrapped.json", BOM + b'{"contacts": ' + TWO + b"}", 2),
    ("bom.ndjson", BOM + TWO_NDJSON, 2),
    ("bom_sniffed.json", BOM + TWO_NDJSON, 2),
    ("bom.json.gz", gzip.compress(BOM + TWO), 2),
    (
        "bom_broken.json",
        BOM + b'[{"email": oops}]',
        "is not valid JSON at byte offset 14: lexical error: invalid char in json text.",
    ),
    ("bom_only.json", BOM + b"\n", "is empty"),
    ("at_limit.json", b"[" + AT_LIMIT + b"]", 1),
    ("at_limit_lines.json", b"[\n" + AT_LIMIT + b",\n" + TWO[1:], 3),
    ("at_limit.ndjson", _nested(MAX_DEPTH) + b"\n", 1),
    ("over_limit.json", b"[" + OVER_LIMIT + b"]", DEEP.format(1 + OVER_AT)),
    ("over_limit_lines.json", TWO[:-2] + b",\n" + OVER_LIMIT + b"\n]\n", DEEP.format(len(TWO) + OVER_AT)),
    ("over_limit_wrapped.json", b'{"contacts": [' + OVER_LIMIT + b"]}", DEEP.format(14 + OVER_AT - 1)),
    ("over_limit.ndjson", TWO_NDJSON + _nested(MAX_DEPTH + 1) + b"\n", DEEP.format(len(TWO_NDJSON) + OVER_AT + 1)),
    ("brackets.json", b"[" * 20_000 + b"]" * 20_000, DEEP.format(MAX_DEPTH)),
    ("brackets.json.gz", gzip.compress(b"[" * 20_000 + b"]" * 20_000), DEEP.format(MAX_DEPTH)),
    (
        "objects.json",
        b'{"contacts": ' + b'{"a": ' * 20_000 + b"1" + b"}" * 20_000 + b"}",
        DEEP.format(13 + 6 * (MAX_DEPTH - 1)),
    ),
    ("brackets_in_strings.json", b'[{"email": "new1@example.com", "note": "' + b"[" * 100 + b'"}]', 1),
    ("scalar.json", b"42", NOT_A_CONTACT_FILE.format(0)),
    ("string.json", b'  "new1@example.com"', NOT_A_CONTACT_FILE.format(2)),
    ("null.json", b"\nnull\n", NOT_A_CONTACT_FILE.format(1)),
    ("csv.json", b"email;name\nnew1@example.com;Ann\n", NOT_A_CONTACT_FILE.format(0)),
    (
        "no_array.json",
        b'{"email": "new1@example.com", "name": "Ann"}',
        "is not a contact file: the top-level object holds no array of contacts",
    ),
    ("two_arrays.json", TWO + TWO, f"is not valid JSON at byte offset {len(TWO)}: parse error: trailing garbage"),
    (
        "garbage_after.json",
        TWO + b"thanks!",
        f"is not valid JSON at byte offset {len(TWO)}: parse error: trailing garbage",
    ),
    (
        "not_gzip.json",
        b"\x1f\x8b garbage, not deflate",
        "is a damaged gzip file at byte offset 0: Unknown compression method",
    ),
    (
        "truncated.json.gz",
        GZIP_TWO[: len(GZIP_TWO) // 2],
        "is a damaged gzip file at byte offset 26: Compressed file ended before the end-of-stream marker was reached",
    ),
    ("empty.json", b"", "is empty"),
    ("blank.json", b" \n\t\n", "is empty"),
    ("empty.json.gz", gzip.compress(b""), "is empty"),
    ("empty_array.json", b"[]", 0),
    ("not_objects.json", b'[1, "new1@example.com", null]', 0),
]
IDS = [case[0] for case in CASES]


def _expected_error(name: str, outcome: str) -> str:
    return f"contact file '{name}' {outcome}"


@pytest.mark.parametrize(("name", "content", "outcome"), CASES, ids=IDS)
def test_the_reader_accepts_or_refuses_each_bad_input_exactly(
    tmp_path: Path, name: str, content: bytes, outcome: int | str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    if isinstance(outcome, int):
        records = list(iter_records(path))
        assert sum(isinstance(r, dict) and "email" in r for r in records) == outcome
        return
    with pytest.raises(ContactFileError) as caught:
        list(iter_records(path))
    assert str(caught.value).startswith(_expected_error(name, outcome))


@pytest.fixture
def connector(database_url: str):
    return lambda: connect(database_url)


def _campaign(db: psycopg.Connection, contacts_dir: Path, name: str) -> int:
    """A campaign on base.json and `name`, imported once while `name` held no contacts."""
    (contacts_dir / "base.json").write_bytes(BASE)
    (contacts_dir / name).write_bytes(b"[]")
    servers.add_server(db, servers.ServerSpec(name="Sandbox", provider="sandbox"))
    templates.save_template(db, "promo", "<p>Bonjour {{ first_name }}</p>")
    campaign_id = campaigns.create_campaign(db, name="Black Friday", subject="Offres", template="promo")
    campaigns.configure_campaign(
        db,
        campaign_id,
        contact_files=["base.json", name],
        lines=[campaigns.LineSpec("L'équipe Promo", "offres@mondomaine.com", "Sandbox")],
        contacts_dir=contacts_dir,
    )
    return campaign_id


@pytest.mark.parametrize(("name", "content", "outcome"), CASES, ids=IDS)
def test_a_refused_file_fails_the_campaign_and_keeps_its_contacts(
    db: psycopg.Connection, connector, contacts_dir: Path, name: str, content: bytes, outcome: int | str
) -> None:
    campaign_id = _campaign(db, contacts_dir, name)
    import_campaign(connector, campaign_id, contacts_dir)
    before = contacts_by_email(db, campaign_id)
    assert sorted(before) == ["kept1@example.com", "kept2@example.com"]
    (contacts_dir / name).write_bytes(content)

    if isinstance(outcome, int):
        report = import_campaign(connector, campaign_id, contacts_dir)
        assert report.new_contacts == outcome
        assert campaign_sql.campaign_by_id(db, campaign_id).status == "scheduled"
        return
    with pytest.raises(ContactFileError):
        import_campaign(connector, campaign_id, contacts_dir)
    failed = campaign_sql.campaign_by_id(db, campaign_id)
    assert failed.status == "failed"
    assert failed.error.startswith(_expected_error(name, outcome))
    assert contacts_by_email(db, campaign_id) == before


@pytest.mark.parametrize("error", [MemoryError(), KeyError("city"), RuntimeError("  ")], ids=repr)
def test_any_import_error_fails_the_campaign_with_a_message_naming_it(
    db: psycopg.Connection, connector, contacts_dir: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    campaign_id = _campaign(db, contacts_dir, "extra.json")

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(campaign_import, "import_contact_files", fail)
    with pytest.raises(type(error)):
        import_campaign(connector, campaign_id, contacts_dir)
    failed = campaign_sql.campaign_by_id(db, campaign_id)
    assert failed.status == "failed"
    assert (
        failed.error
        == {"MemoryError": "MemoryError", "KeyError": "KeyError: 'city'", "RuntimeError": "RuntimeError"}[
            type(error).__name__
        ]
    )
