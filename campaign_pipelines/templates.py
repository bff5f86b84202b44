"""Email templates: HTML with Jinja syntax, checked when saved."""

from __future__ import annotations

from pathlib import Path

import jinja2
import psycopg
from jinja2.sandbox import SandboxedEnvironment

from campaign_pipelines.errors import ValidationError
from campaign_pipelines.store import catalog

# The same environment kind that renders messages: a template that parses here renders there.
_ENV = SandboxedEnvironment(autoescape=True, undefined=jinja2.ChainableUndefined)


def check_template(name: str, html: str) -> None:
    """Raise ValidationError giving the line of the first syntax error."""
    problems = []
    if not html.strip():
        problems.append("the template is empty")
    else:
        try:
            _ENV.parse(html)
        except jinja2.TemplateSyntaxError as error:
            problems.append(f"line {error.lineno}: {error.message}")
    if problems:
        raise ValidationError(f"template '{name}'", problems)


def read_template_source(html: str | None, file: str | None) -> str:
    """The template text, given inline or as a file path (exactly one of them)."""
    if bool(html) == bool(file):
        raise ValidationError("template", ["give the HTML either inline or as a file, exactly one of them"])
    if file:
        path = Path(file).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ValidationError("template", [f"cannot read {path}: {error}"]) from None
    return html or ""


def save_template(conn: psycopg.Connection, name: str, html: str) -> tuple[int, bool]:
    """Create or update a template by name: (id, created). Campaigns keep their own snapshot."""
    name = name.strip()
    if not name:
        raise ValidationError("template", ["name is empty"])
    check_template(name, html)
    with conn.transaction():
        return catalog.upsert_template(conn, name, html)
