"""The error a contact file that cannot be read raises, and the phrases that say what is wrong.

Raised by the reader (contacts.reader) and its depth guard (contacts.depth); the import, the CLI
and the Dagster asset report it as it is: the file's name, the problem and the byte offset.
"""

from __future__ import annotations

from pathlib import Path

# What a ContactFileError says is wrong with the file.
NOT_JSON = "is not valid JSON"
NOT_UTF8 = "is not UTF-8 text"
TOO_DEEP = "is nested too deeply"
NOT_CONTACTS = "is not a contact file"
EMPTY = "is empty"
DAMAGED_GZIP = "is a damaged gzip file"


class ContactFileError(ValueError):
    """A contact file that cannot be read; the import stops on it.

    `problem` is one of the module's phrases (NOT_JSON, TOO_DEEP…), `detail` what the parser
    said, `offset` the byte where reading stopped (None when no byte is to blame).
    """

    def __init__(self, path: Path, offset: int | None, problem: str, detail: str | None = None) -> None:
        self.path = path
        self.offset = offset
        self.problem = problem
        self.detail = detail
        where = f" at byte offset {offset}" if offset is not None else ""
        because = f": {detail}" if detail else ""
        super().__init__(f"contact file '{path.name}' {problem}{where}{because}")
