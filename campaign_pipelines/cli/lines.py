"""Sending lines as typed on the command line: `--channel` key=value options and `--config` files.

Each line is read by `LineConfig`, the Launchpad's own form for a line, so a line has the same
keys and types from a terminal as from Dagster; only the wording of its problems is the CLI's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pydantic_core

from campaign_pipelines import campaigns
from campaign_pipelines.errors import ValidationError

if TYPE_CHECKING:
    from campaign_pipelines.ops.admin import LineConfig

# The --channel option and the config file's "channels" key keep the names users' scripts and saved
# files have; messages name them so.
_CONFIG_KEYS = ("contact_files", "channels")
# How a problem pydantic finds in a line's value reads on the command line, by pydantic's error type.
_WORDING = {
    "string_type": "{key} must be text, got {value!r}",
    "int_type": "{key} {value!r} is not a whole number",
    "int_parsing": "{key} {value!r} is not a whole number",
    "int_from_float": "{key} {value!r} is not a whole number",
    "float_type": "{key} {value!r} is not a number",
    "float_parsing": "{key} {value!r} is not a number",
    "finite_number": "{key} {value!r} is not a number",
    "number_type": "{key} {value!r} is not a number",
}


def _line_config() -> type[LineConfig]:
    # Imported when a line is read, not with the CLI: dagster takes a second to import, which
    # every other command (and --help) would pay for nothing.
    from campaign_pipelines.ops.admin import LineConfig

    return LineConfig


def _parse_line_options(values: list[str]) -> tuple[list[campaigns.LineSpec], list[str]]:
    """The --channel values as sending lines, with every syntax problem found."""
    specs: list[campaigns.LineSpec] = []
    problems: list[str] = []
    for number, text in enumerate(values, start=1):
        fields: dict[str, object] = {}
        for part in _split_pairs(text):
            key, separator, value = part.partition("=")
            key = key.strip()
            if not separator:
                problems.append(f"channel {number}: '{key}' is not key=value")
            elif key in fields:
                problems.append(f"channel {number}: '{key}' is given twice")
            else:
                fields[key] = value.strip()
        spec, found = _line_from_fields(number, fields)
        problems += found
        if spec is not None:
            specs.append(spec)
    return specs, problems


def _split_pairs(text: str) -> list[str]:
    """Split on commas, except escaped ones (\\,) which stay in the value."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char if char == "," else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current) + ("\\" if escaped else ""))
    return [part for part in parts if part.strip()]


def _line_from_fields(number: int, fields: dict[str, object]) -> tuple[campaigns.LineSpec | None, list[str]]:
    """One line's fields (strings from --channel, JSON values from --config) as a LineSpec.

    Only the shape is checked here; configure_campaign checks the values (server exists, email valid...).
    """
    where = f"channel {number}"
    config = _line_config()
    known = config.model_fields
    problems = [f"{where}: unknown key '{key}' (expected {', '.join(known)})" for key in fields if key not in known]
    missing = [key for key, field in known.items() if field.is_required() and key not in fields]
    problems += [f"{where}: {key} is missing" for key in missing]
    # An empty optional value (`max_daily_sends=`) means the seed's default, as an empty Launchpad field does.
    given = {
        key: value
        for key, value in fields.items()
        if key in known and (known[key].is_required() or not (isinstance(value, str) and not value.strip()))
    }
    try:
        line = config.model_validate(given)
    except pydantic_core.ValidationError as error:
        problems += [f"{where}: {_worded(found)}" for found in error.errors() if found["loc"][0] not in missing]
        return None, problems
    if problems:
        return None, problems
    return campaigns.LineSpec(**line.model_dump()), []


def _worded(error: pydantic_core.ErrorDetails) -> str:
    key, value = error["loc"][0], error["input"]
    wording = _WORDING.get(error["type"], "{key} {value!r}: {message}")
    return wording.format(key=key, value=value, message=error["msg"])


def _read_config(path: Path) -> tuple[list[str], list[campaigns.LineSpec]]:
    what = f"config file {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValidationError(what, [f"cannot read it as JSON: {error}"]) from None
    if not isinstance(data, dict):
        raise ValidationError(what, ["it must be a JSON object with contact_files and channels"])
    problems = [f"unknown key '{key}' (expected {', '.join(_CONFIG_KEYS)})" for key in data if key not in _CONFIG_KEYS]
    files = data.get("contact_files", [])
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        problems.append("contact_files must be a list of file names")
        files = []
    raw_lines = data.get("channels", [])
    if not isinstance(raw_lines, list):
        problems.append("channels must be a list of objects")
        raw_lines = []
    lines: list[campaigns.LineSpec] = []
    for number, fields in enumerate(raw_lines, start=1):
        if not isinstance(fields, dict):
            problems.append(f"channel {number} must be an object")
            continue
        spec, found = _line_from_fields(number, fields)
        problems += found
        if spec is not None:
            lines.append(spec)
    if problems:
        raise ValidationError(what, problems)
    return files, lines
