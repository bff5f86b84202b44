"""How deeply a contact file may nest, checked on the raw text before a parser reads it.

Called by contacts.reader on every chunk it hands to ijson, and on NDJSON lines that may nest
deeply; a file past the limit raises ContactFileError (TOO_DEEP) at the exact byte.
"""

from __future__ import annotations

import re
from pathlib import Path

from campaign_pipelines.contacts.file_errors import TOO_DEEP, ContactFileError

# Levels of arrays and objects a file may nest, the top-level array (or object) and each
# contact included: a contact is an object, its attributes may hold a few more levels. Bounded
# because yajl (ijson) keeps one prefix string per level, each as long as the path to it:
# memory grows with the square of the depth (20,000 levels of "[" took 22 GB).
MAX_DEPTH = 64
_TOO_DEEP_DETAIL = f"more than {MAX_DEPTH} levels of arrays and objects"

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_CLOSING = {ord("["): ord("]"), ord("{"): ord("}")}
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_NOT_STRUCTURE_OR_ESCAPE = bytes(byte for byte in range(256) if byte not in b'[]{}"\\')
_ESCAPE = re.compile(rb"\\.", re.DOTALL)


class DepthGuard:
    """Refuses text nested more than MAX_DEPTH levels, chunk by chunk, before a parser reads it.

    Cheap on real files: C picks out the brackets and quotes (escaped quotes dropped first) and
    removes adjacent pairs ("", [], {}) a few rounds, leaving what is still open. A bracket
    inside a string never pairs with one outside it: the string's quotes stand between them
    until the string itself is removed, so what is left tells the depth. A round removes at
    most two levels, so few rounds bound the depth; a chunk they leave near the limit is
    scanned byte by byte for the exact offset.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._open = b""  # brackets open at the end of the text checked, outermost first
        self._in_string = False
        self._escaped = False  # the text checked ends with a backslash escaping the next byte
        self._broken = False  # a bracket closed nothing: the parser reports it there

    def check(self, chunk: bytes, start: int) -> None:
        if self._broken or not chunk:
            return
        if self._escaped or chunk.endswith(b"\\"):  # an escape across two chunks: rare
            self._scan(chunk, start)
            return
        if b"\\" in chunk:
            left = chunk.translate(None, _NOT_STRUCTURE_OR_ESCAPE)
            # A backslash before a quote is an escaped quote, or ends an escape (\u00e9")
            # before a closing one; other backslashes change no quote and no bracket.
            if b'\\"' in left:
                left = _ESCAPE.sub(b"", chunk).translate(None, _NOT_STRUCTURE)
            else:
                left = left.replace(b"\\", b"")
        else:
            left = chunk.translate(None, _NOT_STRUCTURE)
        left = self._open + (b'"' if self._in_string else b"") + left
        rounds = 0
        while len(paired := left.replace(b'""', b"").replace(b"[]", b"").replace(b"{}", b"")) < len(left):
            left = paired
            rounds += 1
            if 2 * rounds > MAX_DEPTH:
                self._scan(chunk, start)
                return
        opened = bytearray()
        in_string = False
        deepest = 0
        for byte in left:
            if byte == _QUOTE:
                in_string = not in_string
            elif in_string:
                continue
            elif byte in _CLOSING:
                opened.append(byte)
                deepest = max(deepest, len(opened))
            elif opened and _CLOSING[opened[-1]] == byte:
                opened.pop()
            else:
                self._scan(chunk, start)
                return
        if deepest + 2 * rounds > MAX_DEPTH:
            self._scan(chunk, start)
            return
        self._open, self._in_string = bytes(opened), in_string

    def _scan(self, chunk: bytes, start: int) -> None:
        opened = bytearray(self._open)
        in_string, escaped = self._in_string, self._escaped
        for index, byte in enumerate(chunk):
            if in_string:
                if escaped:
                    escaped = False
                elif byte == _BACKSLASH:
                    escaped = True
                elif byte == _QUOTE:
                    in_string = False
            elif byte == _QUOTE:
                in_string = True
            elif byte in _CLOSING:
                if len(opened) == MAX_DEPTH:
                    raise ContactFileError(self._path, start + index, TOO_DEEP, _TOO_DEEP_DETAIL)
                opened.append(byte)
            elif byte == 0x5D or byte == 0x7D:
                if not opened or _CLOSING[opened[-1]] != byte:
                    self._broken = True
                    return
                opened.pop()
        self._open, self._in_string, self._escaped = bytes(opened), in_string, escaped
