"""Templates: Jinja syntax checked on save, errors give the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_pipelines import templates
from campaign_pipelines.errors import ValidationError
from campaign_pipelines.store import catalog


def test_save_creates_then_updates(db) -> None:
    template_id, created = templates.save_template(db, "promo", "<p>Bonjour {{ first_name }}</p>")
    assert created
    same_id, created_again = templates.save_template(db, "promo", "<p>Salut {{ first_name }}</p>")
    assert (same_id, created_again) == (template_id, False)
    assert catalog.template_by_name(db, "promo").html == "<p>Salut {{ first_name }}</p>"


def test_a_syntax_error_gives_its_line_and_saves_nothing(db) -> None:
    html = "<p>ok</p>\n<p>{{ first_name }</p>\n"
    with pytest.raises(ValidationError, match="line 2"):
        templates.save_template(db, "broken", html)
    assert catalog.template_by_name(db, "broken") is None


def test_unclosed_block_is_reported() -> None:
    with pytest.raises(ValidationError, match="line"):
        templates.check_template("t", "{% if vip %}\n<p>VIP</p>\n")


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ("{{ ''.__class__.__mro__ }}", "does what the sandbox forbids: access to attribute '__class__'"),
        ("{{ lipsum.__globals__['os'] }}", "does what the sandbox forbids: access to attribute '__globals__'"),
        ("{{ shout() }}", "fails for every sample contact: UndefinedError: 'shout' is undefined"),
        ("{{ range(10**9) | list }}", "fails for every sample contact: OverflowError: Range too big"),
        ("{{ 'x' * 10**8 }}", "does what the sandbox forbids: the template repeats a value"),
        ("{{ 'a' + 1 }}", "fails for every sample contact: TypeError"),
    ],
)
def test_a_template_that_cannot_render_is_refused_at_save(db, html: str, problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        templates.save_template(db, "doomed", html)
    assert problem in str(refused.value)
    assert catalog.template_by_name(db, "doomed") is None


def test_a_template_failing_only_for_some_data_is_saved(db) -> None:
    # A contact whose age is 0 fails at send time, alone; the others are fine.
    templates.save_template(db, "ratio", "<p>{{ 100 // (age|int) }}</p>")
    assert catalog.template_by_name(db, "ratio") is not None


def test_source_inline_or_from_file(tmp_path: Path) -> None:
    path = tmp_path / "t.html"
    path.write_text("<p>{{ city }}</p>", encoding="utf-8")
    assert templates.read_template_source(None, str(path)) == "<p>{{ city }}</p>"
    assert templates.read_template_source("<p>x</p>", None) == "<p>x</p>"
    with pytest.raises(ValidationError, match="exactly one"):
        templates.read_template_source("<p>x</p>", str(path))
    with pytest.raises(ValidationError, match="cannot read"):
        templates.read_template_source(None, str(tmp_path / "missing.html"))
