"""Stream contact records out of JSON files in constant memory.

Formats, each optionally gzip-compressed (recognised by its magic bytes, not its name):
- a JSON array of contacts: `[{...}, {...}]`;
- an object holding one array of contacts: `{"contacts": [{...}, ...]}` (the first array wins);
- NDJSON / JSON Lines: one contact per line (`.ndjson` / `.jsonl`, or sniffed from the content).

Records come out as parsed Python values, or as `TOO_LARGE` when an NDJSON line is over the
record size limit (skipped without parsing it). A file that is not valid JSON raises
`ContactFileError` naming the file and the byte offset (in the uncompressed text for gzip).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import ijson
import orjson

# A record larger than this is skipped and counted, never loaded into the database.
MAX_RECORD_BYTES = 64 * 1024

_READ_SIZE = 256 * 1024
# orjson reads an integer past 64 bits as a float, losing digits: text holding this many
# digits in a row is left to ijson (which refuses such integers) or json (which keeps them).
_LONG_NUMBER = b"0" * 19
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_NDJSON_SUFFIXES = (".ndjson", ".jsonl")
_GZIP_MAGIC = b"\x1f\x8b"


class ContactFileError(ValueError):
    """A contact file that cannot be read as JSON; the import stops on it."""

    def __init__(self, path: Path, offset: int | None, reason: str) -> None:
        self.path = path
        self.offset = offset
        where = f" at byte offset {offset}" if offset is not None else ""
        super().__init__(f"contact file '{path.name}' is not valid JSON{where}: {reason}")


class _TooLarge:
    def __repr__(self) -> str:
        return "TOO_LARGE"


TOO_LARGE = _TooLarge()


class _CountingReader:
    """Counts the bytes handed to the parser and keeps the last chunk, to locate errors.

    `head` is read before `raw`; `start` is the file offset of the first byte read.
    """

    def __init__(self, raw: BinaryIO, *, head: bytes = b"", start: int = 0) -> None:
        self._raw = raw
        self._head = head
        self.consumed = start
        self.last_chunk = b""
        self.last_chunk_start = start

    def read(self, size: int = -1) -> bytes:
        if self._head and size:  # ijson first reads 0 bytes to learn the stream's type
            cut = len(self._head) if size < 0 else size
            chunk, self._head = self._head[:cut], self._head[cut:]
        else:
            chunk = self._raw.read(size)
        self.last_chunk_start = self.consumed
        self.last_chunk = chunk
        self.consumed += len(chunk)
        return chunk


def _open(path: Path) -> BinaryIO:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _logical_name(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def _first_significant_byte(stream: BinaryIO) -> bytes:
    """The first non-blank byte (b"" for a blank file)."""
    while chunk := stream.read(4096):
        stripped = chunk.lstrip()
        if stripped:
            return stripped[:1]
    return b""


def _looks_like_ndjson(path: Path) -> bool:
    """`{` at the start is either one document holding an array, or one contact per line."""
    with _open(path) as stream:
        first_line = stream.readline(MAX_RECORD_BYTES + 1)
        if len(first_line) > MAX_RECORD_BYTES or not first_line.endswith(b"\n"):
            return False
        try:
            first = json.loads(first_line)
        except ValueError:
            return False
        if not isinstance(first, dict) or any(isinstance(v, list) for v in first.values()):
            return False
        for line in stream:
            if line.strip():
                return line.lstrip().startswith(b"{")
        return True


# yajl prints the text around an error (newlines blanked) and, under it, an arrow whose ^
# stands just past the offending byte.
_YAJL_POINTER = re.compile(r"\n(?P<context>[^\n]*)\n(?P<arrow>[^\n]*\(right here\) -*\^)")


def _parse_error(path: Path, reader: _CountingReader, error: Exception) -> ContactFileError:
    message = str(error).strip()
    reason = message.splitlines()[0] if message else type(error).__name__
    offset = reader.consumed
    match = _YAJL_POINTER.search(str(error))
    if match:
        context = match["context"]
        snippet = context.strip()
        caret = len(match["arrow"]) - 2 - (len(context) - len(context.lstrip()))
        blanked = reader.last_chunk.replace(b"\n", b" ").replace(b"\r", b" ").replace(b"\t", b" ")
        found = blanked.rfind(snippet.encode("utf-8", "replace"))
        if found >= 0 and caret >= 0:
            offset = reader.last_chunk_start + found + caret
    return ContactFileError(path, offset, reason)


def _ijson_items(path: Path, reader: _CountingReader, prefix: str, *, skip_first: bool = False) -> Iterator[object]:
    try:
        items = ijson.items(reader, prefix, use_float=True, buf_size=_READ_SIZE)
        if skip_first:
            next(items)
        yield from items
    except ijson.JSONError as error:
        raise _parse_error(path, reader, error) from None
    except UnicodeDecodeError as error:
        raise ContactFileError(path, reader.consumed, f"not UTF-8 text ({error.reason})") from None


def _iter_json(path: Path, prefix: str) -> Iterator[object]:
    with _open(path) as raw:
        yield from _ijson_items(path, _CountingReader(raw), prefix)


def _iter_array(path: Path) -> Iterator[object]:
    """A top-level array. Exports mostly hold one contact per line: runs of whole lines are
    parsed by orjson as one array (about twice as fast as ijson); ijson takes over for good
    at the first run that does not parse, so it reads the rest and reports any error.

    A run of lines holds whole elements exactly when "[" + run + "]" parses: JSON strings
    hold no raw newline, so a run ending inside an element leaves a bracket open.
    """
    with _open(path) as raw:
        pending = raw.read(_READ_SIZE)
        opening = pending.find(b"[")
        # The text ijson would have read before `pending`, reduced to its state: at the start,
        # after an element and its comma, or after an element with no comma yet.
        state, offset = (b"[", opening + 1) if opening >= 0 and not pending[:opening].strip() else (b"", 0)
        pending = pending[offset:]
        while state and (end := pending.rfind(b"\n")) >= 0:
            body = pending[:end].rstrip()
            comma = body.endswith(b",")
            if comma:
                body = body[:-1].rstrip()
            if body:
                # A run that must open with a comma (a rare layout) or may hold a long integer.
                if state == b"[0" or _may_hold_a_long_integer(body):
                    break
                try:
                    records = orjson.loads(b"[" + body + b"]")
                except orjson.JSONDecodeError:
                    break
                yield from records
                state = b"[0," if comma else b"[0"
            elif comma:
                break
            offset += end + 1
            pending = pending[end + 1 :] + raw.read(_READ_SIZE)
        reader = _CountingReader(raw, head=state + pending, start=offset - len(state))
        yield from _ijson_items(path, reader, "item", skip_first=state not in (b"", b"["))


def _array_prefix(path: Path) -> str:
    """The ijson prefix of the first array directly inside a top-level object."""
    with _open(path) as raw:
        reader = _CountingReader(raw)
        try:
            for prefix, event, _value in ijson.parse(reader, buf_size=_READ_SIZE):
                if event == "start_array" and prefix and "." not in prefix:
                    return f"{prefix}.item"
                if event == "end_map" and prefix == "":
                    break
        except ijson.JSONError as error:
            raise _parse_error(path, reader, error) from None
    raise ContactFileError(path, None, "the top-level object holds no array of contacts")


def _iter_ndjson(path: Path) -> Iterator[object]:
    offset = 0
    with _open(path) as stream:
        for line in stream:
            size = len(line)
            if size > MAX_RECORD_BYTES:
                yield TOO_LARGE
            elif line.strip():
                if _may_hold_a_long_integer(line):
                    yield _stdlib_json(path, line, offset)
                else:
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError:
                        yield _stdlib_json(path, line, offset)
            offset += size


def _may_hold_a_long_integer(text: bytes) -> bool:
    return _LONG_NUMBER in text.translate(_DIGITS_AS_ZEROS)


def _stdlib_json(path: Path, line: bytes, offset: int) -> object:
    """A line orjson refused: the standard library reads what orjson does not (NaN, integers
    over 64 bits) and, for a broken line, tells where it breaks."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise ContactFileError(path, offset + error.pos, error.msg) from None
    except UnicodeDecodeError as error:
        raise ContactFileError(path, offset + error.start, "not UTF-8 text") from None


def iter_records(path: Path) -> Iterator[object]:
    """Every record of one contact file, in file order.

    The format is recognised now (a file of none raises here); the records are read as the
    iterator is consumed. Not a generator itself: one layer less per record.
    """
    if _logical_name(path).endswith(_NDJSON_SUFFIXES):
        return _iter_ndjson(path)
    with _open(path) as stream:
        first = _first_significant_byte(stream)
    if first == b"[":
        return _iter_array(path)
    if first == b"{":
        return _iter_ndjson(path) if _looks_like_ndjson(path) else _iter_json(path, _array_prefix(path))
    if first == b"":
        raise ContactFileError(path, 0, "the file is empty")
    raise ContactFileError(path, 0, "expected a JSON array, an object holding an array, or NDJSON")
