"""`campaigns template ...`: save and list HTML templates."""

from __future__ import annotations

import argparse

from campaign_pipelines import templates
from campaign_pipelines.cli.common import _command, _Database, _group
from campaign_pipelines.cli.output import _print_table
from campaign_pipelines.store import catalog


def _add_template_commands(groups: argparse._SubParsersAction) -> None:
    commands = _group(
        groups,
        "template",
        "HTML email templates",
        "HTML email templates with Jinja syntax ({{ first_name }}), checked when saved. A campaign keeps its own"
        " copy: editing a template never changes a campaign already configured.",
        "examples:\n  campaigns template add promo --file promo.html\n  campaigns template list",
    )
    add = _command(
        commands,
        "add",
        _template_add,
        "Create a template, or replace the one with this name.",
        "examples:\n  campaigns template add promo --file templates/promo.html\n"
        "  campaigns template add hello --html '<p>Bonjour {{ first_name }}</p>'",
    )
    add.add_argument("name", metavar="NAME", help="unique template name")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", metavar="PATH", help="an HTML file (UTF-8)")
    source.add_argument("--html", metavar="TEXT", help="or: the HTML itself")
    _command(commands, "list", _template_list, "List the templates.")


def _template_add(args: argparse.Namespace, db: _Database) -> None:
    html = templates.read_template_source(args.html, args.file)
    template_id, created = templates.save_template(db.conn, args.name, html)
    print(f"template {template_id} '{args.name.strip()}' {'created' if created else 'updated'}")


def _template_list(args: argparse.Namespace, db: _Database) -> None:
    rows = catalog.list_templates(db.conn)
    _print_table(
        ("id", "name", "size", "updated"),
        [(t.id, t.name, f"{len(t.html)} chars", t.updated_at) for t in rows],
        empty="no templates yet: add one with 'campaigns template add'",
    )
