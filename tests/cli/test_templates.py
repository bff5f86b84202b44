"""`campaigns template` add and list."""

from __future__ import annotations

from pathlib import Path

import psycopg

from campaign_pipelines.store import catalog


def test_template_add_creates_then_updates_and_lists(db: psycopg.Connection, run, tmp_path: Path) -> None:
    source = tmp_path / "promo.html"
    source.write_text("<h1>Jusqu'à -70% {{ first_name }}</h1>", encoding="utf-8")

    assert run("template", "add", "promo", "--html", "<p>v1</p>") == (0, "template 1 'promo' created\n", "")
    assert run("template", "add", "promo", "--file", str(source)) == (0, "template 1 'promo' updated\n", "")
    code, out, _ = run("template", "list")

    assert code == 0
    template = catalog.template_by_name(db, "promo")
    assert template is not None and template.html == source.read_text(encoding="utf-8")
    header, _, row = out.splitlines()
    assert header.split() == ["id", "name", "size", "updated"]
    assert row.split()[:4] == ["1", "promo", str(len(template.html)), "chars"]


def test_template_with_a_syntax_error_exits_1(db: psycopg.Connection, run) -> None:
    code, _, err = run("template", "add", "bad", "--html", "<p>\n{% if %}</p>")
    assert code == 1
    assert "template 'bad': 1 problem(s)" in err and "line 2:" in err
    assert catalog.list_templates(db) == []


def test_template_needs_exactly_one_source(run) -> None:
    assert run("template", "add", "x")[0] == 2
    assert run("template", "add", "x", "--html", "<p/>", "--file", "x.html")[0] == 2


def test_template_from_a_missing_file_exits_1(db: psycopg.Connection, run, tmp_path: Path) -> None:
    code, _, err = run("template", "add", "x", "--file", str(tmp_path / "absent.html"))
    assert code == 1
    assert "cannot read" in err
