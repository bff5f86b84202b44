"""Email templates: HTML with Jinja syntax, checked when saved.

The check parses the template, then renders it for sample contacts (one without attributes,
one whose every variable is "1"), as sending will: a template that touches what the sandbox
forbids, or that fails for every sample, is refused with the error. An error that depends on
the data (a division by an attribute that is 0) is left to sending, which fails that contact.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import psycopg
from jinja2 import meta
from jinja2.exceptions import SecurityError

from campaign_pipelines.errors import ValidationError
from campaign_pipelines.rendering import MessageRenderer, Sandbox
from campaign_pipelines.store import catalog

# The same environment kind that renders messages: a template that parses here renders there.
_ENV = Sandbox(autoescape=True, undefined=jinja2.ChainableUndefined)


_SAMPLE_EMAIL = "sample@example.com"


def check_template(name: str, html: str) -> None:
    """Raise ValidationError giving the line of the first syntax error, or the error rendering
    it for sample contacts raised."""
    problems = []
    if not html.strip():
        problems.append("the template is empty")
    else:
        try:
            parsed = _ENV.parse(html)
        except jinja2.TemplateSyntaxError as error:
            problems.append(f"line {error.lineno}: {error.message}")
        else:
            problem = _render_problem(html, meta.find_undeclared_variables(parsed))
            if problem:
                problems.append(problem)
    if problems:
        raise ValidationError(f"template '{name}'", problems)


def _render_problem(html: str, variables: set[str]) -> str | None:
    renderer = MessageRenderer("", html)
    failures = []
    for attributes in ({}, dict.fromkeys(variables, "1")):
        try:
            renderer.render(_SAMPLE_EMAIL, attributes)
        except SecurityError as error:
            return f"the template does what the sandbox forbids: {error}"
        except Exception as error:  # template code: whatever it raises is the user's to read
            failures.append(f"{type(error).__name__}: {error}")
    if len(failures) == 2:
        return f"rendering fails for every sample contact: {failures[0]}"
    return None


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
