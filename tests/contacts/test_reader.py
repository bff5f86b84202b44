"""Streaming reader: every supported format, and bad files reported with file and byte offset."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from campaign_pipelines.contacts.depth import MAX_DEPTH
from campaign_pipelines.contacts.file_errors import ContactFileError
from campaign_pipelines.contacts.reader import MAX_RECORD_BYTES, TOO_LARGE, iter_records

RECORDS = [{"email": "a@example.com", "n": 1}, {"email": "b@example.com", "tags": ["x", "y"]}, "junk"]


def _write(path: Path, text: str, *, compress: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _ndjson(records: list) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("name", "render"),
    [
        ("array.json", lambda rs: json.dumps(rs, indent=2)),
        ("wrapped.json", lambda rs: json.dumps({"source": "crm", "contacts": rs})),
        ("wrapped_pretty.json", lambda rs: json.dumps({"contacts": rs}, indent=1)),
        ("lines.ndjson", _ndjson),
        ("lines.jsonl", _ndjson),
        ("sniffed.json", _ndjson),
    ],
)
def test_every_format_yields_the_records_in_order(tmp_path: Path, name: str, render, compress: bool) -> None:
    path = _write(tmp_path / (name + (".gz" if compress else "")), render(RECORDS), compress=compress)
    assert list(iter_records(path)) == RECORDS


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    path = _write(tmp_path / "contacts.json", json.dumps(RECORDS), compress=True)
    assert list(iter_records(path)) == RECORDS


def test_numbers_come_out_as_plain_floats_and_ints(tmp_path: Path) -> None:
    path = _write(tmp_path / "n.json", '[{"email": "a@example.com", "score": 1.5, "age": 30}]')
    assert list(iter_records(path)) == [{"email": "a@example.com", "score": 1.5, "age": 30}]


def test_broken_array_names_file_and_byte_offset(tmp_path: Path) -> None:
    text = '[{"email": "a@example.com"},\n {"email": "c@example.com", oops}]'
    path = _write(tmp_path / "broken.json", text)
    records = iter_records(path)
    assert next(records) == {"email": "a@example.com"}
    with pytest.raises(ContactFileError) as caught:
        list(records)
    assert caught.value.offset == text.index("oops")
    assert "broken.json" in str(caught.value) and f"byte offset {text.index('oops')}" in str(caught.value)


def test_truncated_file_reports_its_end(tmp_path: Path) -> None:
    text = '[{"email": "a@example.com"}, {"email": "b@exa'
    path = _write(tmp_path / "cut.json", text)
    with pytest.raises(ContactFileError) as caught:
        list(iter_records(path))
    assert caught.value.offset == len(text)


def test_broken_ndjson_line_offset_points_into_that_line(tmp_path: Path) -> None:
    text = '{"email": "a@example.com"}\n{"email": "b@example.com",,}\n'
    path = _write(tmp_path / "broken.ndjson", text)
    with pytest.raises(ContactFileError) as caught:
        list(iter_records(path))
    assert caught.value.offset == text.index(",,") + 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [("", "empty"), ("   \n", "empty"), ("email;name\n", "expected a JSON array"), ('{"x": 1, "y": 2}', "no array")],
)
def test_files_that_hold_no_contacts_are_refused(tmp_path: Path, content: str, reason: str) -> None:
    with pytest.raises(ContactFileError, match=reason):
        list(iter_records(_write(tmp_path / "bad.json", content)))


def test_oversized_ndjson_line_is_skipped_without_parsing(tmp_path: Path) -> None:
    huge = json.dumps({"email": "big@example.com", "blob": "x" * MAX_RECORD_BYTES})
    path = _write(tmp_path / "big.ndjson", huge + "\n" + json.dumps(RECORDS[0]) + "\n")
    assert list(iter_records(path)) == [TOO_LARGE, RECORDS[0]]


def test_an_integer_beyond_64_bits_is_refused_whatever_the_layout(tmp_path: Path) -> None:
    records = [*MANY[:3000], {"email": "x@example.com", "id": 12345678901234567890123}, *MANY[3000:6000]]
    text = _one_per_line(records)
    with pytest.raises(ContactFileError, match="integer overflow") as caught:
        list(iter_records(_write(tmp_path / "big.json", text)))
    number = text.index("12345678901234567890123")
    assert number - 1 <= caught.value.offset <= number + 23  # where yajl stops: at the number


def test_ndjson_integers_beyond_orjson_are_read_as_the_standard_library_reads_them(tmp_path: Path) -> None:
    text = '{"email": "a@example.com", "id": 123456789012345678901234567890}\n{"email": "b@example.com", "x": 1}\n'
    path = _write(tmp_path / "odd.ndjson", text)
    assert repr(list(iter_records(path))) == repr([json.loads(line) for line in text.splitlines()])


def test_non_utf8_ndjson_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.ndjson"
    path.write_bytes('{"email": "a@example.com", "city": "Besançon"}\n'.encode("latin-1"))
    with pytest.raises(ContactFileError, match="UTF-8"):
        list(iter_records(path))


def test_offset_is_exact_far_into_a_big_file(tmp_path: Path) -> None:
    good = ",\n".join(json.dumps({"email": f"user{i}@example.com", "n": i}) for i in range(20_000))
    text = "[" + good + ',\n{"email": "late@example.com", "n": tru}]'
    path = _write(tmp_path / "big.json", text)
    with pytest.raises(ContactFileError) as caught:
        list(iter_records(path))
    assert len(text) > 500_000
    # yajl reports a bad literal where it stops reading it: within the broken token.
    assert text.index("tru}") <= caught.value.offset <= text.index("}]")


def _one_per_line(records: list) -> str:
    return "[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n"


MANY = [{"email": f"user{i}@example.com", "n": i, "tags": ["a", "b"], "note": "x" * (i % 50)} for i in range(30_000)]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_one_per_line(MANY), id="one-per-line, several MB"),
        pytest.param(
            _one_per_line(MANY[:15_000])[:-3]
            + ',\n{"email": "m@example.com",\n "nested": {"a": [1,\n 2]}},\n'
            + _one_per_line(MANY[15_000:])[2:],
            id="a record over several lines midway",
        ),
        pytest.param("[\n" + "\n, ".join(json.dumps(r) for r in MANY[:5000]) + "\n]", id="leading commas"),
        pytest.param(
            "  \n[\n\n" + json.dumps(RECORDS[0]) + ",\n\n" + json.dumps(RECORDS[1]) + "\n\n]", id="blank lines"
        ),
        pytest.param("[\n]\n", id="empty array"),
        pytest.param(
            _one_per_line([*MANY[:3000], {"email": "x@example.com", "card": "4000123412341234123"}, *MANY[3000:6000]]),
            id="19 digits in a string",
        ),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_arrays_laid_out_any_way_yield_what_json_reads(tmp_path: Path, text: str, compress: bool) -> None:
    path = _write(tmp_path / "contacts.json", text, compress=compress)
    assert list(iter_records(path)) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "error_at"),
    [
        (_one_per_line(MANY)[:-2] + ",\n]\n", "]\n"),  # trailing comma: the ']' after it is wrong
        (_one_per_line(MANY[:20_000]).replace("},\n", "}\n", 1), '{"email": "user1@'),  # missing comma
        (_one_per_line(MANY) + "[]\n", "[]\n"),  # text after the array
    ],
    ids=["trailing comma", "missing comma", "text after the array"],
)
def test_errors_in_one_per_line_arrays_keep_their_exact_offset(tmp_path: Path, text: str, error_at: str) -> None:
    path = _write(tmp_path / "broken.json", text)
    with pytest.raises(ContactFileError) as caught:
        list(iter_records(path))
    assert caught.value.offset == text.rindex(error_at)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _tricky_string(rng: random.Random) -> str:
    """Brackets, quotes and backslashes that a depth check blind to strings would count."""
    return "".join(rng.choice(["[", "]", "{", "}", '"', "\\", "é", "a", " "]) for _ in range(rng.randrange(6)))


def _nest(rng: random.Random, levels: int) -> object:
    value: object = _tricky_string(rng)
    for _ in range(levels):
        value = [_tricky_string(rng), value] if rng.random() < 0.5 else {_tricky_string(rng): value}
    return value


@pytest.mark.parametrize("layout", ["one per line", "pretty", "wrapped", "ndjson"])
def test_the_depth_limit_is_exact_whatever_the_strings_hold(tmp_path: Path, layout: str) -> None:
    rng = random.Random(layout)
    for attempt in range(60):
        # Filler first, of a size that puts chunk boundaries anywhere in the deep record.
        records = [{"email": f"user{i}@example.com", "note": '\\\\"[' * 50} for i in range(rng.randrange(1200, 1500))]
        deep = {"email": "deep@example.com", "x": _nest(rng, rng.randrange(MAX_DEPTH - 6, MAX_DEPTH + 3))}
        records.append(deep)
        ascii_only = attempt % 2 == 0
        if layout == "ndjson":
            text, limit = "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in records), MAX_DEPTH
        elif layout == "wrapped":
            text, limit = json.dumps({"contacts": records}, ensure_ascii=ascii_only), MAX_DEPTH - 2
        else:
            indent = 1 if layout == "pretty" else None
            text, limit = json.dumps(records, ensure_ascii=ascii_only, indent=indent), MAX_DEPTH - 1
            if layout == "one per line":
                text = _one_per_line(records)
        path = _write(tmp_path / ("c.ndjson" if layout == "ndjson" else "c.json"), text)
        if _depth(deep) <= limit:
            assert list(iter_records(path))[-1] == deep
        else:
            with pytest.raises(ContactFileError, match="is nested too deeply at byte offset"):
                list(iter_records(path))
