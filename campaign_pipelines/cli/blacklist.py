"""`campaigns blacklist ...`: list, add, remove and export the global blacklist."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from campaign_pipelines import blacklist
from campaign_pipelines.cli.common import _command, _Database, _group, _positive_int, _wrap
from campaign_pipelines.cli.output import _cell, _print_table
from campaign_pipelines.errors import ValidationError

# Sources whose addresses hurt the sending domain's reputation when mailed again.
_HARMFUL_SOURCES = ("complaint", "hard_bounce")


def _add_blacklist_commands(groups: argparse._SubParsersAction) -> None:
    commands = _group(
        groups,
        "blacklist",
        "the global blacklist: addresses no campaign sends to",
        "The global blacklist (the seed's 'liste noire'): addresses no campaign ever sends to. Unsubscribes,"
        " spam complaints and hard bounces add themselves (the tracking app and the providers' webhooks), soft"
        " bounces once an address has SOFT_BOUNCE_LIMIT of them (default 3); 'add' and 'remove' are yours."
        " Imports count blacklisted contacts out and sending skips them from its next batch on.",
        "examples:\n"
        "  campaigns blacklist list --source complaint\n"
        '  campaigns blacklist add jean.dupont@example.com --reason "asked by phone"\n'
        "  campaigns blacklist remove jean.dupont@example.com\n"
        "  campaigns blacklist export --output blacklist.csv",
    )
    listing = _command(commands, "list", _blacklist_list, "List the blacklisted addresses, newest first.")
    listing.add_argument(
        "--source", choices=blacklist.SOURCES, help="only the addresses from this source (default: all)"
    )
    listing.add_argument(
        "--limit",
        type=_positive_int,
        default=100,
        metavar="N",
        help="how many addresses to show (default: %(default)s)",
    )

    add = _command(
        commands,
        "add",
        _blacklist_add,
        "Blacklist an address (source 'manual'): no campaign sends to it from its next batch on.",
        'example:\n  campaigns blacklist add jean.dupont@example.com --reason "asked by phone"',
    )
    add.add_argument("email", metavar="EMAIL", help="the address; it is trimmed and lower-cased")
    add.add_argument("--reason", metavar="TEXT", help=f"why, shown by 'list' (default: '{blacklist.MANUAL_REASON}')")

    remove = _command(
        commands, "remove", _blacklist_remove, "Take an address off the blacklist: campaigns may send to it again."
    )
    remove.add_argument("email", metavar="EMAIL", help="the address")

    export = _command(
        commands,
        "export",
        _blacklist_export,
        "Write the whole blacklist as CSV (email,reason,source,created_at), by address.",
        _wrap("Rows stream from the database: millions of addresses take no more memory than a few.")
        + "\n\nexamples:\n  campaigns blacklist export --output blacklist.csv\n"
        "  campaigns blacklist export | gzip > blacklist.csv.gz",
    )
    export.add_argument("--output", type=Path, metavar="FILE", help="write to this file (default: standard output)")


def _blacklist_list(args: argparse.Namespace, db: _Database) -> None:
    rows = blacklist.entries(db.conn, source=args.source, limit=args.limit)
    _print_table(
        ("email", "source", "reason", "added"),
        [(entry.email, entry.source, entry.reason, entry.created_at) for entry in rows],
        empty="the blacklist is empty" if args.source is None else f"no address blacklisted by {args.source}",
    )
    if len(rows) == args.limit:
        print(f"(the newest {args.limit:,}: --limit shows more, 'campaigns blacklist export' writes them all)")


def _blacklist_add(args: argparse.Namespace, db: _Database) -> None:
    entry, created = blacklist.add(db.conn, args.email, args.reason)
    if created:
        print(f"{entry.email} blacklisted: no campaign sends to it from its next batch on")
    else:
        print(f"{entry.email} was already blacklisted ({entry.source}, {_cell(entry.created_at)}): {entry.reason}")


def _blacklist_remove(args: argparse.Namespace, db: _Database) -> None:
    entry = blacklist.remove(db.conn, args.email)
    print(f"{entry.email} removed from the blacklist (it was {entry.source}: {entry.reason})")
    if entry.source in _HARMFUL_SOURCES:
        print(
            f"warning: {entry.email} was blacklisted after a {entry.source.replace('_', ' ')};"
            " mailing it again hurts the sending domain's reputation",
            file=sys.stderr,
        )


def _blacklist_export(args: argparse.Namespace, db: _Database) -> None:
    if args.output is None:
        count = blacklist.export_csv(db.conn, sys.stdout)
        print(f"{count:,} blacklisted address(es) exported", file=sys.stderr)
        return
    path = args.output.expanduser()
    # Written beside it, then renamed: FILE is never left half-written.
    partial = path.with_name(path.name + ".partial")
    done = False
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            count = blacklist.export_csv(db.conn, out)
        partial.replace(path)
        done = True
    except OSError as error:
        raise ValidationError(f"output file {path}", [f"cannot write it: {error.strerror or error}"]) from None
    finally:
        if not done:
            partial.unlink(missing_ok=True)
    print(f"{count:,} blacklisted address(es) exported to {path}")
