"""Sending lines as typed on the command line: `--channel` key=value options and `--config` files."""

from __future__ import annotations

import json
import math
from pathlib import Path

from campaign_pipelines import campaigns
from campaign_pipelines.errors import ValidationError

# Keys of one sending line, as typed in --channel or a --config file. The option and the file's
# "channels" key keep the names users' scripts and saved files have; messages name them so.
_TEXT_KEYS = ("sender_name", "sender_email", "server")
_LINE_KEYS = (*_TEXT_KEYS, "send_frequency_minutes", "max_daily_sends", "scheduled_at")
_CONFIG_KEYS = ("contact_files", "channels")


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
    problems = [
        f"{where}: unknown key '{key}' (expected {', '.join(_LINE_KEYS)})" for key in fields if key not in _LINE_KEYS
    ]
    problems += [f"{where}: {key} is missing" for key in _TEXT_KEYS if key not in fields]
    for key in (*_TEXT_KEYS, "scheduled_at"):
        value = fields.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{where}: {key} must be text, got {value!r}")
    try:
        frequency = _number(fields.get("send_frequency_minutes"), float)
    except ValueError:
        frequency = None
        problems.append(f"{where}: send_frequency_minutes {fields['send_frequency_minutes']!r} is not a number")
    try:
        quota = _number(fields.get("max_daily_sends"), int)
    except ValueError:
        quota = None
        problems.append(f"{where}: max_daily_sends {fields['max_daily_sends']!r} is not a whole number")
    if problems:
        return None, problems
    start = fields.get("scheduled_at")
    spec = campaigns.LineSpec(
        sender_name=str(fields["sender_name"]),
        sender_email=str(fields["sender_email"]),
        server=str(fields["server"]),
        send_frequency_minutes=frequency,
        max_daily_sends=None if quota is None else int(quota),
        scheduled_at=start if isinstance(start, str) else None,
    )
    return spec, []


def _number(value: object, kind: type[int] | type[float]) -> int | float | None:
    """The number, or None when empty; ValueError when it is not a finite number of this kind."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(value)
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    number = kind(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


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
