"""Stream contact records out of JSON files in constant memory.

Formats, each optionally gzip-compressed (recognised by its magic bytes, not its name):
- a JSON array of contacts: `[{...}, {...}]`;
- an object holding one array of contacts: `{"contacts": [{...}, ...]}` (the first array wins);
- NDJSON / JSON Lines: one contact per line (`.ndjson` / `.jsonl`, or sniffed from the content).

A leading UTF-8 byte order mark (spreadsheet exports write one) is skipped; offsets still count it.
Records come out as parsed Python values, or as `TOO_LARGE` when an NDJSON line is over the
record size limit (skipped without parsing it). A file that cannot be read (not JSON, not UTF-8,
nested deeper than `MAX_DEPTH`, a damaged gzip file, no contacts in it) raises `ContactFileError`
naming the file and the byte offset (in the uncompressed text for gzip).
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from functools import reduce
from operator import getitem
from pathlib import Path
from typing import BinaryIO

import ijson
import orjson

from campaign_pipelines.contacts.depth import MAX_DEPTH, DepthGuard
from campaign_pipelines.contacts.file_errors import (
    DAMAGED_GZIP,
    EMPTY,
    NOT_CONTACTS,
    NOT_JSON,
    NOT_UTF8,
    ContactFileError,
)

# A record larger than this is skipped and counted, never loaded into the database.
MAX_RECORD_BYTES = 64 * 1024

_READ_SIZE = 256 * 1024
# orjson reads an integer past 64 bits as a float, losing digits: text holding this many
# digits in a row is left to ijson (which refuses such integers) or json (which keeps them).
_LONG_NUMBER = b"0" * 19
# One pass over an NDJSON line answers two questions: digits become "0" (a run of 19 may be a
# long integer) and "[" and "{" become "[" (more than MAX_DEPTH of them may nest too deeply).
_SCREEN = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x5B if byte in b"[{" else 0x20 for byte in range(256))
_NDJSON_SUFFIXES = (".ndjson", ".jsonl")
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)
# orjson refuses text nested more than 1024 levels. The fast path wraps each run of contacts
# in enough arrays that this happens exactly past MAX_DEPTH levels of the file (the wrapper
# stands for the top-level array): the check costs no pass of its own over the text.
_ORJSON_MAX_DEPTH = 1024
_WRAPPERS = _ORJSON_MAX_DEPTH - MAX_DEPTH + 1
_WRAP_OPEN, _WRAP_CLOSE, _UNWRAP = b"[" * _WRAPPERS, b"]" * _WRAPPERS, (0,) * (_WRAPPERS - 1)


class _TooLarge:
    def __repr__(self) -> str:
        return "TOO_LARGE"


TOO_LARGE = _TooLarge()


class _CountingReader:
    """Counts the bytes handed to the parser and keeps the last chunk, to locate errors; each
    chunk passes the depth guard before the parser gets it.

    `head` is read before `raw`; `start` is the file offset of the first byte read.
    """

    def __init__(self, path: Path, raw: BinaryIO, *, head: bytes = b"", start: int = 0) -> None:
        self._raw = raw
        self._head = head
        self._guard = DepthGuard(path)
        self.consumed = start
        self.last_chunk = b""
        self.last_chunk_start = start
        self.previous_tail = b""  # the end of the chunk before: a character may straddle the two

    def read(self, size: int = -1) -> bytes:
        if self._head and size:  # ijson first reads 0 bytes to learn the stream's type
            cut = len(self._head) if size < 0 else size
            chunk, self._head = self._head[:cut], self._head[cut:]
        else:
            chunk = self._raw.read(size)
        self._guard.check(chunk, self.consumed)
        if chunk:
            self.previous_tail = self.last_chunk[-3:]
        self.last_chunk_start = self.consumed
        self.last_chunk = chunk
        self.consumed += len(chunk)
        return chunk


class _GzipText(gzip.GzipFile):
    """The text of a gzip file; damage (not deflate after all, cut short) is a ContactFileError
    at the offset of the text read so far."""

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except _GZIP_ERRORS as error:
            raise self._damaged(error) from None

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return super().readline(size)
        except _GZIP_ERRORS as error:
            raise self._damaged(error) from None

    def _damaged(self, error: Exception) -> ContactFileError:
        return ContactFileError(Path(self.name), self.tell(), DAMAGED_GZIP, str(error) or type(error).__name__)


def _open(path: Path) -> tuple[BinaryIO, int]:
    """The file's text (decompressed when gzip), past a leading byte order mark, and the offset
    it starts at."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    stream: BinaryIO = _GzipText(path, "rb") if magic == _GZIP_MAGIC else path.open("rb")  # type: ignore[assignment]
    try:
        if stream.read(len(_BOM)) == _BOM:
            return stream, len(_BOM)
        stream.seek(0)
    except BaseException:
        stream.close()
        raise
    return stream, 0


def _logical_name(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def _first_significant_byte(path: Path) -> tuple[bytes, int]:
    """The first non-blank byte (b"" for a blank file) and its offset."""
    stream, offset = _open(path)
    with stream:
        while chunk := stream.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped[:1], offset + len(chunk) - len(stripped)
            offset += len(chunk)
    return b"", offset


def _looks_like_ndjson(path: Path) -> bool:
    """`{` at the start is either one document holding an array, or one contact per line."""
    stream, _start = _open(path)
    with stream:
        first_line = stream.readline(MAX_RECORD_BYTES + 1)
        if len(first_line) > MAX_RECORD_BYTES or not first_line.endswith(b"\n"):
            return False
        try:
            first = json.loads(first_line)
        except (ValueError, RecursionError):  # read as one document, where errors are reported
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
    # yajl's message is bytes: it quotes the text around the error, whatever its encoding.
    raw = error.args[0] if error.args else ""
    message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if "invalid bytes in UTF8 string" in message:
        return _not_utf8(path, reader)
    reason = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    offset = reader.consumed
    match = _YAJL_POINTER.search(message)
    if match:
        context = match["context"]
        snippet = context.strip()
        caret = len(match["arrow"]) - 2 - (len(context) - len(context.lstrip()))
        blanked = reader.last_chunk.replace(b"\n", b" ").replace(b"\r", b" ")
        found = blanked.rfind(snippet.encode("utf-8", "replace"))
        if found >= 0 and caret >= 0:
            offset = reader.last_chunk_start + found + caret
            if reason.endswith("invalid character inside string."):
                offset += 1  # for a control character in a string, the arrow stands on it
    return ContactFileError(path, offset, NOT_JSON, reason)


def _not_utf8(path: Path, reader: _CountingReader) -> ContactFileError:
    """The error at the first byte of the parsed chunk that is not UTF-8 (yajl does not say)."""
    text = reader.previous_tail + reader.last_chunk
    start = reader.last_chunk_start - len(reader.previous_tail)
    # Continuation bytes first: the end of a character that began before the tail.
    skip = len(text) - len(text.lstrip(bytes(range(0x80, 0xC0))))
    try:
        text[skip:].decode("utf-8")
    except UnicodeDecodeError as error:
        return ContactFileError(path, start + skip + error.start, NOT_UTF8)
    return ContactFileError(path, reader.last_chunk_start, NOT_UTF8)


def _ijson_items(path: Path, reader: _CountingReader, prefix: str, *, skip_first: bool = False) -> Iterator[object]:
    try:
        items = ijson.items(reader, prefix, use_float=True, buf_size=_READ_SIZE)
        if skip_first:
            next(items)
        yield from items
    except ijson.JSONError as error:
        raise _parse_error(path, reader, error) from None
    except UnicodeDecodeError:
        raise _not_utf8(path, reader) from None


def _iter_json(path: Path, prefix: str) -> Iterator[object]:
    raw, start = _open(path)
    with raw:
        yield from _ijson_items(path, _CountingReader(path, raw, start=start), prefix)


def _iter_array(path: Path) -> Iterator[object]:
    """A top-level array. Exports mostly hold one contact per line: runs of whole lines are
    parsed by orjson as one array (about twice as fast as ijson); ijson takes over for good
    at the first run that does not parse, so it reads the rest and reports any error.

    A run of lines holds whole elements exactly when "[" + run + "]" parses: JSON strings
    hold no raw newline, so a run ending inside an element leaves a bracket open. A run nested
    too deeply does not parse either (see _WRAPPERS): ijson's depth guard reports it.
    """
    raw, start = _open(path)
    with raw:
        pending = raw.read(_READ_SIZE)
        opening = pending.find(b"[")
        # The text ijson would have read before `pending`, reduced to its state: at the start,
        # after an element and its comma, or after an element with no comma yet.
        at_start = opening >= 0 and not pending[:opening].strip()
        state, offset = (b"[", start + opening + 1) if at_start else (b"", start)
        pending = pending[offset - start :]
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
                    records = reduce(getitem, _UNWRAP, orjson.loads(_WRAP_OPEN + body + _WRAP_CLOSE))
                except orjson.JSONDecodeError:
                    break
                yield from records
                state = b"[0," if comma else b"[0"
            elif comma:
                break
            offset += end + 1
            pending = pending[end + 1 :] + raw.read(_READ_SIZE)
        reader = _CountingReader(path, raw, head=state + pending, start=offset - len(state))
        yield from _ijson_items(path, reader, "item", skip_first=state not in (b"", b"["))


def _array_prefix(path: Path) -> str:
    """The ijson prefix of the first array directly inside a top-level object."""
    raw, start = _open(path)
    with raw:
        reader = _CountingReader(path, raw, start=start)
        try:
            for prefix, event, _value in ijson.parse(reader, buf_size=_READ_SIZE):
                if event == "start_array" and prefix and "." not in prefix:
                    return f"{prefix}.item"
                if event == "end_map" and prefix == "":
                    break
        except ijson.JSONError as error:
            raise _parse_error(path, reader, error) from None
        except UnicodeDecodeError:
            raise _not_utf8(path, reader) from None
    raise ContactFileError(path, None, NOT_CONTACTS, "the top-level object holds no array of contacts")


def _iter_ndjson(path: Path) -> Iterator[object]:
    stream, offset = _open(path)
    with stream:
        for line in stream:
            size = len(line)
            if size > MAX_RECORD_BYTES:
                yield TOO_LARGE
            elif line.strip():
                screened = line.translate(_SCREEN)
                if screened.count(b"[") > MAX_DEPTH:  # a line nests at most one level per "[" or "{"
                    DepthGuard(path).check(line, offset)
                if _LONG_NUMBER in screened:
                    yield _stdlib_json(path, line, offset)
                else:
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError:
                        yield _stdlib_json(path, line, offset)
            offset += size


def _may_hold_a_long_integer(text: bytes) -> bool:
    return _LONG_NUMBER in text.translate(_SCREEN)


class _NotANumber(ValueError):
    """NaN or Infinity: Python writes them, JSON has no such numbers (ijson refuses them too)."""


def _refuse_constant(name: str) -> float:
    raise _NotANumber(name)


# A string (skipped whole) or one of the constants Python's json module would read.
_STRING_OR_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*+"|-?Infinity|NaN')


def _stdlib_json(path: Path, line: bytes, offset: int) -> object:
    """A line orjson refused or may misread: the standard library reads integers over 64 bits
    and, for a broken line, tells where it breaks."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ContactFileError(path, offset + error.start, NOT_UTF8) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        position = offset + len(text[: error.pos].encode("utf-8"))
        raise ContactFileError(path, position, NOT_JSON, error.msg) from None
    except _NotANumber as error:
        found = next(m for m in _STRING_OR_CONSTANT.finditer(text) if not m[0].startswith('"'))
        position = offset + len(text[: found.start()].encode("utf-8"))
        raise ContactFileError(path, position, NOT_JSON, f"{error} is not a JSON number") from None


def iter_records(path: Path) -> Iterator[object]:
    """Every record of one contact file, in file order.

    The format is recognised now (a file of none raises here); the records are read as the
    iterator is consumed. Not a generator itself: one layer less per record.
    """
    if _logical_name(path).endswith(_NDJSON_SUFFIXES):
        return _iter_ndjson(path)
    first, offset = _first_significant_byte(path)
    if first == b"[":
        return _iter_array(path)
    if first == b"{":
        return _iter_ndjson(path) if _looks_like_ndjson(path) else _iter_json(path, _array_prefix(path))
    if first == b"":
        raise ContactFileError(path, None, EMPTY)
    raise ContactFileError(
        path,
        offset,
        NOT_CONTACTS,
        "expected a JSON array of contacts, an object holding one, or NDJSON (one contact per line)",
    )
