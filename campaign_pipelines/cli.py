"""The `campaigns` command: servers, templates, the two campaign steps, then launching,
controlling and watching the sends, and the global blacklist, from a terminal.

Each command is a thin shell over the plain functions the Dagster admin jobs call too
(servers, templates, campaigns, contacts.campaign_import, sending.campaign, blacklist): validation
and SQL live there. `watch` only reads the database; the sends themselves run in Dagster.
Exit status: 0 done, 1 refused (the message lists every problem), 2 bad command line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import textwrap
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.padding import Padding
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from campaign_pipelines import blacklist, campaigns, servers, settings, templates
from campaign_pipelines.contacts.campaign_import import failure_message, import_campaign
from campaign_pipelines.contacts.loader import ImportReport
from campaign_pipelines.contacts.reader import ContactFileError
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.reports import TOP_DOMAINS, CampaignReport, Funnel, build_report
from campaign_pipelines.sending import campaign as lifecycle
from campaign_pipelines.sending.progress import SendTotals, line_label
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import catalog
from campaign_pipelines.store import contacts as contact_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store import tracking as tracking_sql
from campaign_pipelines.store.connection import connect, ensure_schema

# Keys of one sending line, as typed in --channel or a --config file.
_TEXT_KEYS = ("sender_name", "sender_email", "server")
_CHANNEL_KEYS = (*_TEXT_KEYS, "send_frequency_minutes", "max_daily_sends", "scheduled_at")
_CONFIG_KEYS = ("contact_files", "channels")
_HELP_WIDTH = 79
# A long import reports its progress on stderr at most this often.
_PROGRESS_EVERY_S = 10.0

# The operator's controls (their help), and what to say once each is done.
_CONTROLS = {
    "pause": "Pause a running campaign: its lines stop within seconds and nothing is lost.",
    "resume": "Resume a paused campaign: Dagster's stalled_lines_sensor starts its lines again where they were.",
    "cancel": "Cancel a campaign for good: its lines stop within seconds and the contacts not sent yet never are.",
}
_CONTROL_DONE = {
    "paused": "its running lines stop within seconds; nothing is lost. Resume with 'campaigns campaign resume {id}'",
    "running": "Dagster's stalled_lines_sensor restarts its lines; follow with 'campaigns campaign watch {id}'",
    "cancelled": "its running lines stop within seconds; the contacts not sent yet will not be sent",
}

_EPILOG = """\
examples (the seed's Black Friday campaign):
  export BREVO_API_KEY=...   # the key stays in the environment, never in the database
  campaigns server add "Brevo - Compte Principal" --provider brevo --api-key-env BREVO_API_KEY
  campaigns template add promo --file promo.html
  campaigns campaign create --name "Black Friday 2025 - Ventes Flash" \\
      --subject "⚡ Offres Exclusives : Jusqu'à -70% !" --template promo
  campaigns campaign configure 1 --file nouveaux_inscrits.json --file clients_vip.json \\
      --channel "sender_name=L'équipe Promo,sender_email=offres@mondomaine.com,server=Brevo - Compte Principal"
  campaigns campaign status 1
  campaigns campaign launch 1      # or let Dagster launch it at its start date
  campaigns campaign watch 1
  campaigns campaign pause 1
"""

_CONFIGURE_EPILOG = """\
a --channel value is comma-separated key=value pairs (write \\, for a comma inside a value):
  sender_name             sender name, e.g. L'équipe Promo (required)
  sender_email            sender address, e.g. offres@mondomaine.com (required)
  server                  name of an active server, e.g. Brevo - Compte Principal (required)
  send_frequency_minutes  minutes between two sends of this line; empty = as fast as possible
  max_daily_sends         at most this many sends a day; empty = unlimited
  scheduled_at            start, ISO 8601 (no zone = UTC), e.g. 2025-11-28T08:00+01:00; empty = now

examples:
  campaigns campaign configure 1 --file nouveaux_inscrits.json --file clients_vip.json \\
      --channel "sender_name=L'équipe Promo,sender_email=offres@mondomaine.com,server=Brevo - Compte Principal,max_daily_sends=10000" \\
      --channel "sender_name=Le Service Client,sender_email=support@mondomaine.com,server=SendGrid - Secours,send_frequency_minutes=1,max_daily_sends=5000"
  campaigns campaign configure 1 --config black-friday.json --import-now

a --config file holds the same as JSON:
  {"contact_files": ["nouveaux_inscrits.json", "clients_vip.json"],
   "channels": [{"sender_name": "L'équipe Promo", "sender_email": "offres@mondomaine.com",
                 "server": "Brevo - Compte Principal", "max_daily_sends": 10000}]}
"""  # noqa: E501 (commands to copy as they are)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's examples as written; descriptions go through `_wrap`."""


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=_HELP_WIDTH)


@dataclass(frozen=True)
class _Database:
    url: str
    conn: psycopg.Connection

    def connect(self) -> psycopg.Connection:
        return connect(self.url)


_Handler = Callable[[argparse.Namespace, _Database], None]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # here, not at exit, where a closed pipe could no longer be handled
    except BrokenPipeError:
        # Whoever read the output has gone (`| head`): stop quietly, as other command-line tools do,
        # with stdout on /dev/null so the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.prepare is not None:
            args.prepare(args)  # mistakes in the command line are reported before any database is reached
        url = args.database_url or settings.database_url()
        try:
            ensure_schema(url)
            conn = connect(url)
        except psycopg.OperationalError as error:
            print(f"error: cannot reach the campaign database: {error}", file=sys.stderr)
            return 1
        with conn:
            handler: _Handler = args.handler
            handler(args, _Database(url, conn))
    except (ValidationError, NotFoundError, ContactFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="campaigns",
        description=_wrap(
            "Set up email campaigns: sending servers, HTML templates, then a campaign in two steps"
            " (create a draft, configure its contact files and sending lines). Imports and sends run in Dagster."
        ),
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help=(
            "PostgreSQL URL of the campaign database. The usual way is the DATABASE_URL environment variable;"
            " without either, the embedded PostgreSQL in $CAMPAIGNS_HOME/pgdata is started."
        ),
    )
    groups = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_server_commands(groups)
    _add_template_commands(groups)
    _add_campaign_commands(groups)
    _add_blacklist_commands(groups)
    return parser


def _group(
    groups: argparse._SubParsersAction, name: str, summary: str, description: str, epilog: str
) -> argparse._SubParsersAction:
    parser = groups.add_parser(
        name, help=summary, description=_wrap(description), epilog=epilog, formatter_class=_Formatter
    )
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def _command(
    commands: argparse._SubParsersAction, name: str, handler: _Handler, summary: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=summary, description=_wrap(summary), epilog=epilog, formatter_class=_Formatter
    )
    parser.set_defaults(handler=handler, prepare=None, command_parser=parser)
    return parser


# --- servers -----------------------------------------------------------------------------


def _add_server_commands(groups: argparse._SubParsersAction) -> None:
    commands = _group(
        groups,
        "server",
        "sending servers: an API account at a provider",
        "Sending servers (the seed's 'Serveurs SMTP'): an API account at a provider. The API key itself is never"
        " stored: a server records the environment variable or file that holds it.",
        "examples:\n"
        "  export BREVO_API_KEY=...   # the key stays in the environment, never in the database\n"
        '  campaigns server add "Brevo - Compte Principal" --provider brevo --api-key-env BREVO_API_KEY\n'
        '  campaigns server add "SendGrid - Secours" --provider sendgrid --api-key-file /run/secrets/sendgrid\n'
        "  campaigns server list\n"
        '  campaigns server disable "SendGrid - Secours"',
    )
    add = _command(
        commands,
        "add",
        _server_add,
        "Register a new sending server.",
        'example:\n  campaigns server add "Brevo - Compte Principal" --provider brevo --api-key-env BREVO_API_KEY',
    )
    add.add_argument("name", metavar="NAME", help="unique name, e.g. 'Brevo - Compte Principal'")
    _server_options(add, updating=False)
    add.add_argument(
        "--inactive",
        action="store_true",
        help="register it inactive: no campaign line may use it yet (default: active)",
    )

    update = _command(
        commands,
        "update",
        _server_update,
        "Change an existing server; every option left out keeps its current value.",
        'example (a new key):\n  campaigns server update "Brevo - Compte Principal" --api-key-env BREVO_API_KEY_2025',
    )
    update.add_argument("name", metavar="NAME", help="name of the server to change")
    _server_options(update, updating=True)
    state = update.add_mutually_exclusive_group()
    state.add_argument(
        "--active", dest="active", action="store_const", const=True, help="make it active (default: unchanged)"
    )
    state.add_argument(
        "--inactive", dest="active", action="store_const", const=False, help="make it inactive (default: unchanged)"
    )

    _command(commands, "list", _server_list, "List the servers and where each one's API key lives.")

    disable = _command(
        commands, "disable", _server_disable, "Deactivate a server: no campaign line may be configured on it."
    )
    disable.add_argument("name", metavar="NAME", help="name of the server")
    enable = _command(commands, "enable", _server_enable, "Activate a server again.")
    enable.add_argument("name", metavar="NAME", help="name of the server")


def _server_options(parser: argparse.ArgumentParser, *, updating: bool) -> None:
    parser.add_argument(
        "--provider",
        choices=servers.PROVIDERS,
        required=not updating,
        help="provider type" + (" (default: unchanged)" if updating else ""),
    )
    parser.add_argument(
        "--url",
        help="API endpoint (default: "
        + ("unchanged, or the new provider's documented one" if updating else "the provider's documented one")
        + ", e.g. "
        + servers.DEFAULT_URLS["brevo"]
        + ")",
    )
    key = parser.add_mutually_exclusive_group()
    key.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="NAME of the environment variable holding the API key, never the key itself"
        + (" (default: unchanged)" if updating else ""),
    )
    key.add_argument("--api-key-file", metavar="PATH", help="or: a file holding the API key")
    unchanged = argparse.SUPPRESS if updating else None
    parser.add_argument(
        "--daily-cap",
        type=_count_or_none,
        default=unchanged,
        metavar="N",
        help="at most N sends a day on this account, all campaigns together; 'none' = no cap"
        + (" (default: unchanged)" if updating else " (default: none)"),
    )
    parser.add_argument(
        "--timezone",
        default=argparse.SUPPRESS if updating else "UTC",
        metavar="ZONE",
        help="time zone in which sending days are counted, e.g. Europe/Paris"
        + (" (default: unchanged)" if updating else " (default: UTC)"),
    )
    parser.add_argument(
        "--batch-size",
        type=_count_or_none,
        default=unchanged,
        metavar="N",
        help="messages per API call; 1 = one message per call, 'none' = the provider's maximum"
        + (" (default: unchanged)" if updating else " (default: the provider's maximum)"),
    )


def _count_or_none(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'none', got {text!r}") from None


def _server_add(args: argparse.Namespace, db: _Database) -> None:
    spec = servers.ServerSpec(
        name=args.name,
        provider=args.provider,
        url=args.url,
        api_key_env=args.api_key_env,
        api_key_file=args.api_key_file,
        active=not args.inactive,
        daily_cap=args.daily_cap,
        timezone=args.timezone,
        batch_size=args.batch_size,
    )
    server_id = servers.add_server(db.conn, spec)
    print(f"server {server_id} '{args.name.strip()}' added{'' if spec.active else ' (inactive)'}")


def _server_update(args: argparse.Namespace, db: _Database) -> None:
    current = catalog.server_by_name(db.conn, args.name.strip())
    if current is None:
        raise servers.unknown_server(db.conn, args.name.strip())
    provider = args.provider or current.provider
    # A custom endpoint belongs to its provider: changing provider falls back to the new one's default.
    url = args.url if args.url is not None else current.url if provider == current.provider else None
    key_env, key_file = args.api_key_env, args.api_key_file
    if key_env is None and key_file is None:
        # Keep the key where it is (api_key_ref is "env:NAME", "file:/path" or "none:"); it is checked again.
        kind, _, where = current.api_key_ref.partition(":")
        key_env = where if kind == "env" else None
        key_file = where if kind == "file" else None
    spec = servers.ServerSpec(
        name=current.name,
        provider=provider,
        url=url,
        api_key_env=key_env,
        api_key_file=key_file,
        active=current.active if args.active is None else args.active,
        daily_cap=getattr(args, "daily_cap", current.daily_cap),
        timezone=getattr(args, "timezone", current.timezone),
        batch_size=getattr(args, "batch_size", current.batch_size),
    )
    server_id, _ = servers.save_server(db.conn, spec)
    print(f"server {server_id} '{current.name}' updated")


def _server_list(args: argparse.Namespace, db: _Database) -> None:
    rows = catalog.list_servers(db.conn)
    _print_table(
        ("id", "name", "provider", "url", "api key", "active", "cap/day", "time zone", "batch"),
        [
            (
                s.id,
                s.name,
                s.provider,
                s.url,
                servers.describe_key_ref(s.api_key_ref),
                s.active,
                s.daily_cap,
                s.timezone,
                s.batch_size,
            )
            for s in rows
        ],
        empty="no servers yet: add one with 'campaigns server add'",
    )


def _server_disable(args: argparse.Namespace, db: _Database) -> None:
    in_use = servers.set_active(db.conn, args.name, False)
    print(f"server '{args.name}' disabled")
    if in_use:
        listed = ", ".join(str(campaign_id) for campaign_id in in_use)
        print(
            f"warning: unfinished campaign(s) {listed} still have sending lines on server '{args.name}'",
            file=sys.stderr,
        )


def _server_enable(args: argparse.Namespace, db: _Database) -> None:
    servers.set_active(db.conn, args.name, True)
    print(f"server '{args.name}' enabled")


# --- templates ---------------------------------------------------------------------------


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


# --- campaigns ---------------------------------------------------------------------------


def _add_campaign_commands(groups: argparse._SubParsersAction) -> None:
    commands = _group(
        groups,
        "campaign",
        "campaigns: create, configure, launch, control, follow",
        "Campaigns in two steps: 'create' makes a draft (name, subject, template); 'configure' gives its contact"
        " files and sending lines and schedules it. Dagster then imports the contacts and sends, from the start"
        " date or once 'launch' says so; 'pause', 'resume' and 'cancel' control the sending, 'watch' follows it.",
        "examples:\n"
        '  campaigns campaign create --name "Black Friday 2025 - Ventes Flash" --subject "Offres" --template promo\n'
        "  campaigns campaign configure 1 --file clients_vip.json \\\n"
        '      --channel "sender_name=Promo,sender_email=offres@mondomaine.com,server=Brevo - Compte Principal"\n'
        "  campaigns campaign list\n"
        "  campaigns campaign status 1\n"
        "  campaigns campaign launch 1\n"
        "  campaigns campaign watch 1",
    )
    create = _command(
        commands,
        "create",
        _campaign_create,
        "Step 1: create a campaign as a draft.",
        'example:\n  campaigns campaign create --name "Black Friday 2025 - Ventes Flash" \\\n'
        '      --subject "⚡ Offres Exclusives : Jusqu\'à -70% !" --template promo',
    )
    create.add_argument("--name", required=True, help="campaign name, e.g. 'Black Friday 2025 - Ventes Flash'")
    create.add_argument("--subject", required=True, help="subject line of the email")
    create.add_argument("--template", required=True, metavar="NAME", help="name of a saved template")

    configure = _command(
        commands,
        "configure",
        _campaign_configure,
        "Step 2: contact files and sending lines; the campaign becomes scheduled and its import is due.",
        _CONFIGURE_EPILOG,
    )
    configure.set_defaults(prepare=_read_lines)
    configure.add_argument("campaign_id", type=int, metavar="ID", help="the id printed by 'campaign create'")
    configure.add_argument(
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="NAME",
        help="a contact file (JSON) by name inside the contacts directory; repeat for several",
    )
    configure.add_argument(
        "--channel",
        dest="channels",
        action="append",
        default=[],
        metavar="FIELDS",
        help="a sending line as key=value pairs (see below); repeat for several",
    )
    configure.add_argument(
        "--config",
        metavar="FILE.json",
        help="or: a JSON file with contact_files and channels, instead of --file and --channel",
    )
    configure.add_argument(
        "--contacts-dir",
        type=Path,
        metavar="DIR",
        help=f"folder holding the contact files (default: $CONTACTS_DIR, else ./contacts: {settings.contacts_dir()})",
    )
    configure.add_argument(
        "--import-now",
        action="store_true",
        help="import the contacts in this process right away instead of waiting for Dagster's import sensor",
    )

    listing = _command(commands, "list", _campaign_list, "List the latest campaigns, newest first.")
    listing.add_argument("--limit", type=int, default=100, help="how many campaigns to show (default: %(default)s)")

    status = _command(commands, "status", _campaign_status, "Show a campaign, its progress and its sending lines.")
    status.add_argument("campaign_id", type=int, metavar="ID", help="campaign id")

    report = _command(
        commands,
        "report",
        _campaign_report,
        "A campaign's results: its funnel, per line, per recipient domain, per tracked link and per hour.",
        _wrap(
            "Read-only, from the database now; sending and tracking go on meanwhile. Opens and clicks are"
            " counted twice: by people only (human) and with machines (all: Apple Mail privacy proxies, link"
            " scanners, prefetches), each as a share of the emails sent."
        )
        + "\n\nexamples:\n  campaigns campaign report 1\n  campaigns campaign report 1 --json | jq .totals",
    )
    report.add_argument("campaign_id", type=int, metavar="ID", help="campaign id")
    report.add_argument("--json", action="store_true", help="print the report as one JSON object, for scripts")

    launch = _command(
        commands,
        "launch",
        _campaign_launch,
        "Start sending a scheduled campaign whose contacts are imported: it becomes running.",
        _wrap(
            "Without it, Dagster's campaign_launch_sensor launches the campaign by itself once its contacts are"
            " imported and its earliest start date has come. Each line still waits for its own start date."
        )
        + "\n\nexample:\n  campaigns campaign launch 1\n  campaigns campaign watch 1",
    )
    launch.add_argument("campaign_id", type=int, metavar="ID", help="campaign id")

    for name, summary in _CONTROLS.items():
        control = _command(commands, name, _campaign_control, summary)
        control.set_defaults(action=name)
        control.add_argument("campaign_id", type=int, metavar="ID", help="campaign id")

    resend = _command(
        commands,
        "resend-unknown",
        _campaign_resend_unknown,
        "Send again to the contacts whose send is unknown; they may receive the campaign twice (needs --yes).",
        _wrap(
            "A contact is unknown when its worker stopped between the request to the provider and the answer"
            " (a crash, a killed worker): it may already have received the campaign, so it is never resent on"
            " its own. This puts those contacts back in the pool; each one may then receive the campaign TWICE."
        )
        + "\n\nexample:\n  campaigns campaign resend-unknown 1 --yes",
    )
    resend.add_argument("campaign_id", type=int, metavar="ID", help="campaign id")
    resend.add_argument(
        "--yes",
        action="store_true",
        help="confirm: these contacts may receive the campaign twice (without it, nothing changes)",
    )

    watch = _command(
        commands,
        "watch",
        _campaign_watch,
        "Follow a campaign live: a progress bar for the campaign and one per sending line.",
        _wrap(
            "Each line shows its status, why it waits (quota, start date, pause, error) and its rate since the"
            " previous read. Watching ends by itself when the campaign is completed, cancelled or failed;"
            " Ctrl-C stops watching, not the sending."
        )
        + "\n\nexamples:\n  campaigns campaign watch 1\n  campaigns campaign watch 1 --interval 5\n"
        "  campaigns campaign watch 1 --once   # one picture, e.g. for a log",
    )
    watch.add_argument("campaign_id", type=int, metavar="ID", help="campaign id")
    watch.add_argument(
        "--interval",
        type=_positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="seconds between two reads of the database (default: %(default)s)",
    )
    watch.add_argument("--once", action="store_true", help="show the progress once and exit")


def _campaign_create(args: argparse.Namespace, db: _Database) -> None:
    campaign_id = campaigns.create_campaign(db.conn, name=args.name, subject=args.subject, template=args.template)
    print(f"campaign {campaign_id} created (draft)")
    print(f"next: campaigns campaign configure {campaign_id} --file ... --channel ...")


def _read_lines(args: argparse.Namespace) -> None:
    """Turn --channel values (or the --config file) into `args.files` and `args.lines`."""
    parser: argparse.ArgumentParser = args.command_parser
    if args.config is not None:
        if args.files or args.channels:
            parser.error("give --config, or --file and --channel, not both")
        args.files, args.lines = _read_config(Path(args.config).expanduser())
        return
    args.lines, problems = _parse_channel_options(args.channels)
    if problems:
        parser.error("bad --channel value:\n" + "\n".join(f"  - {problem}" for problem in problems))


def _campaign_configure(args: argparse.Namespace, db: _Database) -> None:
    files, channels = args.files, args.lines
    contacts_dir = (args.contacts_dir or settings.contacts_dir()).expanduser().resolve()
    campaign = campaigns.configure_campaign(
        db.conn, args.campaign_id, contact_files=files, channels=channels, contacts_dir=contacts_dir
    )
    print(
        f"campaign {campaign.id} '{campaign.name}' scheduled with {len(channels)} sending line(s)"
        f" and {len(files)} contact file(s)"
    )
    if not args.import_now:
        print("its contacts are imported automatically once Dagster runs (campaign_import_sensor)")
        return
    print(f"importing the contacts of campaign {campaign.id} now...")
    try:
        report = import_campaign(db.connect, campaign.id, contacts_dir, on_progress=_progress_printer(campaign.id))
    except (ValidationError, NotFoundError, ContactFileError):
        raise
    except Exception as error:
        # Out of memory, a lost connection…: the campaign is marked failed with this reason, and
        # the operator gets it too, not a traceback.
        raise ValidationError(
            f"campaign {campaign.id}", [f"the contact import failed: {failure_message(error)}"]
        ) from error
    _print_import_report(report)


def _campaign_list(args: argparse.Namespace, db: _Database) -> None:
    rows = campaign_sql.list_campaigns(db.conn, limit=args.limit)
    engagement = tracking_sql.engagement_of(db.conn, [c.id for c in rows])
    table = []
    for c in rows:
        totals = SendTotals.of(c, send_sql.lines_of(db.conn, c.id))
        seen = engagement.get(c.id, tracking_sql.Engagement())
        table.append(
            (
                c.id,
                c.name,
                c.status,
                f"{totals.done_share:.0%}" if c.imported_at else "-",
                f"{c.sent_count:,}/{_to_send(c):,}",
                *(_share(count, c.sent_count) for count in astuple(seen)),
            )
        )
    _print_table(
        ("id", "name", "status", "progress", "sent", "human opens", "all opens", "human clicks", "all clicks"),
        table,
        empty="no campaigns yet: create one with 'campaigns campaign create'",
    )
    if table:
        print(
            _wrap(
                "progress: contacts whose send is final; opens and clicks: unique contacts per email sent,"
                " by people (human) or including machines (all: Apple Mail privacy proxies, link scanners)"
            )
        )


def _share(count: int, of: int) -> str:
    return f"{count / of:.1%}" if of else "-"


def _campaign_status(args: argparse.Namespace, db: _Database) -> None:
    campaign = _campaign(db.conn, args.campaign_id)
    template = catalog.template_by_id(db.conn, campaign.template_id)
    lines = send_sql.lines_of(db.conn, campaign.id)
    to_send = _to_send(campaign)
    progress = f" ({campaign.sent_count / to_send:.0%})" if to_send else ""
    fields: list[tuple[str, object]] = [
        ("campaign", f"{campaign.id} '{campaign.name}'"),
        ("status", campaign.status),
        ("subject", campaign.subject),
        ("template", template.name),
        ("contact files", ", ".join(campaign.contact_files) or None),
        ("nbre_contacts", campaign.nbre_contacts),
        ("blacklisted", _blacklisted_now(db.conn, campaign)),
        ("sent_count", f"{campaign.sent_count}{progress}"),
    ]
    unknown = sum(line.unknown_count for line in lines)
    if lines:
        fields += [
            ("failed", sum(line.failed_count for line in lines)),
            ("unknown", unknown),
            ("suppressed", sum(line.suppressed_count for line in lines)),
        ]
    fields += [
        ("created", campaign.created_at),
        ("configured", campaign.configured_at),
        ("imported", campaign.imported_at),
    ]
    if campaign.error:
        fields.append(("error", campaign.error))
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        print(f"{label + ':':<{width + 1}} {_cell(value)}")

    print()
    _print_table(
        ("line", "sender", "server", "every (min)", "max/day", "start"),
        [
            (
                line.position,
                f"{line.sender_name} <{line.sender_email}>",
                line.server_name,
                "as fast as possible" if line.send_frequency_minutes is None else line.send_frequency_minutes,
                "unlimited" if line.max_daily_sends is None else line.max_daily_sends,
                "now" if line.scheduled_at is None else line.scheduled_at,
            )
            for line in lines
        ],
        empty="no sending lines yet: see 'campaigns campaign configure --help'",
    )
    if not lines:
        return
    now = datetime.now(UTC)
    print()
    _print_table(
        ("line", "status", "sent", "failed", "unknown", "suppressed", "last sent", "next run", "heartbeat", "reason"),
        [
            (
                line.position,
                line.status,
                line.sent_count,
                line.failed_count,
                line.unknown_count,
                line.suppressed_count,
                line.last_sent_at,
                line.next_run_at,
                _age(line.heartbeat_at, now),
                line.reason,
            )
            for line in lines
        ],
        empty="",
    )
    if unknown:
        print(
            f"\n{unknown} contact(s) may or may not have received the campaign (a worker stopped mid-send);"
            " see 'campaigns campaign resend-unknown --help'"
        )


def _campaign_report(args: argparse.Namespace, db: _Database) -> None:
    report = build_report(db.url, args.campaign_id)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    console = Console(highlight=False)
    title = Text.assemble(
        (f"campaign {report.campaign_id}", "bold"),
        f"  '{report.name}'  ",
        (report.status, _STATUS_STYLES.get(report.status, "")),
    )
    console.print(title)
    console.print(
        Text(
            f"as of {_cell(report.generated_at)}"
            + (f" · started {_cell(report.started_at)}" if report.started_at else "")
            + (f" · finished {_cell(report.finished_at)}" if report.finished_at else ""),
            style="dim",
        )
    )
    console.print(_funnel_table(report))
    if report.lines:
        lines = [(line.label, line.funnel) for line in report.lines]
        console.print(_breakdown_table("per line", "line", lines, failed=True))
    if report.domains:
        domains = [(domain.domain, domain.funnel) for domain in report.domains]
        if report.other_domains.contacts:
            domains.append(("other domains", report.other_domains))
        console.print(_breakdown_table(f"per recipient domain (top {TOP_DOMAINS})", "domain", domains, failed=False))
    if report.links:
        console.print(_links_table(report))
    if any(hour.sent or hour.opens or hour.clicks for hour in report.hours):
        console.print(_hours_table(report))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))


def _rate_cell(count: int, sent: int) -> str:
    return f"{count / sent:.1%}" if sent else "-"


def _funnel_table(report: CampaignReport) -> Table:
    totals = report.totals
    table = Table(title="funnel", title_justify="left", show_edge=False)
    table.add_column("")
    table.add_column("contacts", justify="right")
    table.add_column("of sent", justify="right")
    rows: list[tuple[str, int, int | None]] = [
        ("contacts", totals.contacts, None),
        ("sendable", report.sendable, None),
        ("sent", totals.sent, None),
        ("failed", totals.failed, None),
        ("unknown", totals.unknown, None),
        ("suppressed", totals.suppressed, None),
        ("pending", totals.pending, None),
        ("delivered", totals.delivered, totals.sent),
        ("hard bounced", totals.hard_bounced, totals.sent),
        ("soft bounced", totals.soft_bounced, totals.sent),
        ("complained", totals.complained, totals.sent),
        ("opened (human)", totals.human_unique_opens, totals.sent),
        ("opened (all)", totals.unique_opens, totals.sent),
        ("clicked (human)", totals.human_unique_clicks, totals.sent),
        ("clicked (all)", totals.unique_clicks, totals.sent),
        ("unsubscribed", totals.unsubscribed, totals.sent),
    ]
    for label, count, of in rows:
        table.add_row(label, f"{count:,}", "" if of is None else _rate_cell(count, of))
    return table


def _breakdown_table(title: str, what: str, rows: Sequence[tuple[str, Funnel]], *, failed: bool) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column(what, no_wrap=True)
    names = ("sent", *(("failed",) if failed else ()), "opens\nhuman", "opens\nall", "clicks\nhuman", "clicks\nall")
    for name in (*names, "bounced", "unsub."):
        table.add_column(name, justify="right")
    for label, funnel in rows:
        table.add_row(
            label,
            f"{funnel.sent:,}",
            *((f"{funnel.failed:,}",) if failed else ()),
            _rate_cell(funnel.human_unique_opens, funnel.sent),
            _rate_cell(funnel.unique_opens, funnel.sent),
            _rate_cell(funnel.human_unique_clicks, funnel.sent),
            _rate_cell(funnel.unique_clicks, funnel.sent),
            _rate_cell(funnel.bounced, funnel.sent),
            _rate_cell(funnel.unsubscribed, funnel.sent),
        )
    return table


def _links_table(report: CampaignReport) -> Table:
    table = Table(title="per tracked link", title_justify="left", show_edge=False)
    table.add_column("link", overflow="fold")
    for name in ("clickers\nhuman", "clickers\nall", "clicks\nall"):
        table.add_column(name, justify="right")
    for link in report.links:
        table.add_row(
            link.url or f"link {link.idx} (no longer in the template)",
            f"{link.human_unique_clicks:,}",
            f"{link.unique_clicks:,}",
            f"{link.clicks:,}",
        )
    return table


def _hours_table(report: CampaignReport) -> Table:
    table = Table(title="per hour since launch", title_justify="left", show_edge=False)
    table.add_column("hour", no_wrap=True)
    for name in ("sent", "opens\nhuman", "opens\nall", "clicks\nhuman", "clicks\nall", "unsub."):
        table.add_column(name, justify="right")
    for hour in report.hours:
        table.add_row(
            _cell(hour.hour),
            f"{hour.sent:,}",
            f"{hour.human_opens:,}",
            f"{hour.opens:,}",
            f"{hour.human_clicks:,}",
            f"{hour.clicks:,}",
            f"{hour.unsubscribes:,}",
        )
    return table


def _campaign_launch(args: argparse.Namespace, db: _Database) -> None:
    before = _campaign(db.conn, args.campaign_id)
    if before.status == "running":
        print(f"campaign {before.id} '{before.name}' is already running")
    else:
        campaign = lifecycle.launch(db.conn, args.campaign_id)
        print(f"campaign {campaign.id} '{campaign.name}' launched: status {campaign.status}")
    print("Dagster's sensors start the send run: stalled_lines_sensor picks up the pending lines of running campaigns")
    print("(the Dagster daemon must be running: 'make dev' starts one)")
    print(f"follow it: campaigns campaign watch {args.campaign_id}")


def _campaign_control(args: argparse.Namespace, db: _Database) -> None:
    status = lifecycle.apply(db.conn, args.campaign_id, args.action)
    print(f"campaign {args.campaign_id} {status}: {_CONTROL_DONE[status].format(id=args.campaign_id)}")


def _campaign_resend_unknown(args: argparse.Namespace, db: _Database) -> None:
    campaign = _campaign(db.conn, args.campaign_id)
    if not args.yes and campaign.imported_at is not None:
        unknown = send_sql.status_counts(db.conn, campaign.id).get(contact_sql.UNKNOWN, 0)
        if not unknown:
            print(f"campaign {campaign.id} has no contact whose send is unknown: nothing to resend")
            return
        args.command_parser.error(
            f"campaign {campaign.id} has {unknown} contact(s) whose send is unknown: each may already have received"
            " it, and resending may deliver the campaign TWICE to them. Run again with --yes to resend anyway."
        )
    result = lifecycle.apply(db.conn, campaign.id, "resend_unknown")
    print(f"campaign {campaign.id}: {result}")
    print(f"they are sent by the next run of its lines; follow with 'campaigns campaign watch {campaign.id}'")


def _campaign(conn: psycopg.Connection, campaign_id: int) -> campaign_sql.CampaignRow:
    campaign = campaign_sql.campaign_by_id(conn, campaign_id)
    if campaign is None:
        raise NotFoundError(f"campaign {campaign_id} does not exist")
    return campaign


def _blacklisted_now(conn: psycopg.Connection, campaign: campaign_sql.CampaignRow) -> int:
    """Its contacts blacklisted today (suppressed, or unsubscribed, bounced, complained since)."""
    if campaign.imported_at is None or not contact_sql.contact_table_exists(conn, campaign.id):
        return campaign.blacklisted_contacts
    return contact_sql.count_blacklisted_now(conn, campaign.id)


def _to_send(campaign: campaign_sql.CampaignRow) -> int:
    """The contacts the campaign goes to: blacklisted ones are never sent."""
    return max(campaign.nbre_contacts - campaign.blacklisted_contacts, 0)


# --- blacklist ---------------------------------------------------------------------------

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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


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


# --- watch: live progress ----------------------------------------------------------------

# Rates are measured over this many seconds of reads.
_RATE_WINDOW_S = 60.0
# A campaign in one of these statuses will not move any more: watching it ends.
_FINAL = ("completed", "cancelled", "failed")
# Colours of campaign and line statuses on a terminal: green moves, yellow waits, red needs someone.
_STATUS_STYLES = {
    "running": "green",
    "sending": "green",
    "completed": "blue",
    "done": "blue",
    "waiting": "yellow",
    "quota_reached": "yellow",
    "paused": "yellow",
    "error": "red",
    "failed": "red",
    "cancelled": "dim",
}


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


@dataclass
class _Rates:
    """Send rates over the last minute of reads (or since watching began), per line and for the
    campaign: a line paced at one send a minute reads 1.0/min, not 0.0/s between two sends."""

    # (monotonic time, sent count by line id; None is the whole campaign), oldest first.
    reads: deque[tuple[float, dict[int | None, int]]] = field(default_factory=deque)

    def update(self, campaign: campaign_sql.CampaignRow, lines: Sequence[send_sql.LineState]) -> None:
        now = time.monotonic()
        self.reads.append((now, {None: campaign.sent_count, **{line.id: line.sent_count for line in lines}}))
        # Keep one read at least a window old, so the rate always spans a whole window once it can.
        while len(self.reads) > 2 and now - self.reads[1][0] >= _RATE_WINDOW_S:
            self.reads.popleft()

    def of(self, key: int | None) -> str:
        if len(self.reads) < 2:
            return "-"
        (first_at, first), (last_at, last) = self.reads[0], self.reads[-1]
        if last_at <= first_at or key not in last:
            return "-"
        per_s = max(last[key] - first.get(key, last[key]), 0) / (last_at - first_at)
        return f"{per_s:,.1f}/s" if per_s >= 1 else f"{per_s * 60:,.1f}/min"


def _campaign_watch(args: argparse.Namespace, db: _Database) -> None:
    console = Console(highlight=False)
    rates = _Rates()

    def frame() -> tuple[campaign_sql.CampaignRow, RenderableType]:
        # Short autocommit queries: no snapshot is held between two reads.
        campaign = _campaign(db.conn, args.campaign_id)
        lines = send_sql.lines_of(db.conn, campaign.id)
        rates.update(campaign, lines)
        return campaign, _progress_view(campaign, lines, rates, watching=not args.once)

    campaign, view = frame()
    if args.once:
        console.print(view)
        return
    interrupted = False
    try:
        with Live(view, console=console, auto_refresh=False) as live:
            while campaign.status not in _FINAL:
                time.sleep(args.interval)
                campaign, view = frame()
                live.update(view, refresh=True)
    except KeyboardInterrupt:
        interrupted = True
    if not console.is_terminal:
        console.line()  # Rich ends the frame it leaves in a file or pipe without a newline
    if interrupted:
        print(f"stopped watching; campaign {campaign.id} is {campaign.status} and goes on without you")
    else:
        print(f"campaign {campaign.id} {campaign.status}: {campaign.sent_count:,} of {_to_send(campaign):,} sent")


def _progress_view(
    campaign: campaign_sql.CampaignRow, lines: Sequence[send_sql.LineState], rates: _Rates, *, watching: bool
) -> RenderableType:
    """A title and a bar for the campaign, then for each line; the bars are aligned, the titles wrap."""
    total = _to_send(campaign)
    counts = {None: campaign.sent_count, **{line.id: line.sent_count for line in lines}}
    shares = {key: f"{sent:,}/{total:,}" + (f" {sent / total:.0%}" if total else "") for key, sent in counts.items()}
    share_width = max(len(share) for share in shares.values())
    rate_width = max(len(rates.of(key)) for key in counts)

    def bar(key: int | None) -> RenderableType:
        grid = Table.grid(padding=(0, 0, 0, 2), expand=True)
        grid.add_column(ratio=1)
        grid.add_column(justify="right", min_width=share_width, no_wrap=True)
        grid.add_column(justify="right", min_width=rate_width, no_wrap=True)
        # Nothing to send is a full bar, not a division by zero.
        grid.add_row(ProgressBar(total=total or 1, completed=counts[key] if total else 1), shares[key], rates.of(key))
        return Padding(grid, (0, 0, 0, 2))

    def title(name: str, what: str, state: _State) -> Text:
        text = Text.assemble((name, "bold"), "  ", what, "  ", (state.text, _STATUS_STYLES.get(state.status, "")))
        if state.reason:
            text.append(f"  {state.reason}", style="dim")
        return text

    parts: list[RenderableType] = [
        title(
            f"campaign {campaign.id}", f"'{campaign.name}'", _State(campaign.status, campaign.status, campaign.error)
        ),
        bar(None),
    ]
    now = datetime.now(UTC)
    for line in lines:
        parts.append(
            title(line_label(line.position), f"{line.sender_name} · {line.server_name}", _line_state(line, now))
        )
        parts.append(bar(line.id))
    parts.append(
        f"failed {sum(line.failed_count for line in lines):,} · unknown {sum(line.unknown_count for line in lines):,}"
        f" · suppressed {sum(line.suppressed_count for line in lines):,}"
    )
    if not lines:
        parts.append("no sending lines yet: see 'campaigns campaign configure --help'")
    elif (waiting := _why_not_sending(campaign, lines, now)) is not None:
        parts.append(f"not sending yet: {waiting}")
    if watching and campaign.status not in _FINAL:
        parts.append(Text("Ctrl-C stops watching (the campaign goes on)", style="dim"))
    return Group(*parts)


# A waiting line's reason as the send loop writes it: "<why> until <ISO 8601 moment>".
_UNTIL = re.compile(r"(?P<why>.+) until (?P<moment>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)?)")
# What a line waits for, in a word, by the reason's start.
_WAITS = {"pacing": "pacing", "waiting for the start date": "start date"}
# A quota reason ends with when the line stops until: the status already says when it resumes.
_QUOTA_UNTIL = re.compile(r", stopping until .*$")


def _clock_time(moment: datetime, now: datetime, zone: ZoneInfo | None = None) -> str:
    """A moment as the watcher reads it: the time of day, with its date when not today."""
    local = moment.astimezone(zone)
    return f"{local:%H:%M:%S}" if local.date() == now.astimezone(zone).date() else f"{local:%Y-%m-%d %H:%M:%S}"


@dataclass(frozen=True)
class _State:
    """A campaign's or line's state in words, the status giving its colour, and a reason."""

    text: str
    status: str
    reason: str | None


def _line_state(line: send_sql.LineState, now: datetime) -> _State:
    """What a line is doing, in words, and the reason left to show beside it.

    A step waits out short pauses itself (pacing, a near start date) with its line still
    'sending': it is shown waiting, with the moment its next send may leave.
    """
    if line.status == "sending":
        gap = float(line.send_frequency_minutes or 0)
        if line.scheduled_at is not None and line.scheduled_at > now:
            return _State(f"waiting (start date) until {_clock_time(line.scheduled_at, now)}", "waiting", line.reason)
        if gap and line.last_sent_at is not None and (next_send := line.last_sent_at + timedelta(minutes=gap)) > now:
            return _State(f"waiting (pacing) until {_clock_time(next_send, now)}", "waiting", line.reason)
    if line.status == "waiting" and line.reason and (until := _UNTIL.fullmatch(line.reason)):
        why = _WAITS.get(until["why"], until["why"])
        moment = datetime.fromisoformat(until["moment"])
        return _State(f"waiting ({why}) until {_clock_time(moment, now)}", "waiting", None)
    if line.status == "waiting" and line.next_run_at is not None:
        return _State(f"waiting until {_clock_time(line.next_run_at, now)}", "waiting", line.reason)
    if line.status == "quota_reached" and line.next_run_at is not None:
        zone = ZoneInfo(line.server_timezone)
        resumes = line.next_run_at.astimezone(zone)
        when = f"{resumes:%H:%M}" if resumes - now <= timedelta(days=1) else f"{resumes:%Y-%m-%d %H:%M}"
        reason = _QUOTA_UNTIL.sub("", line.reason) if line.reason else None
        return _State(f"quota reached, resumes {when} {line.server_timezone}", "quota_reached", reason)
    return _State(line.status, line.status, line.reason)


def _why_not_sending(
    campaign: campaign_sql.CampaignRow, lines: Sequence[send_sql.LineState], now: datetime
) -> str | None:
    """Why a campaign with lines does not send yet, and what starts it (None: it sends or is over)."""
    if campaign.status == "draft":
        return f"a draft; 'campaigns campaign configure {campaign.id}' schedules it"
    if campaign.status == "processing":
        return "its contacts are being imported; Dagster's campaign_launch_sensor starts it next"
    if campaign.status != "scheduled":
        return None
    if campaign.imported_at is None or (campaign.configured_at and campaign.imported_at < campaign.configured_at):
        return "Dagster's campaign_import_sensor imports its contacts, then campaign_launch_sensor starts it"
    starts = [line.scheduled_at for line in lines if line.scheduled_at is not None]
    if len(starts) == len(lines) and min(starts) > now:
        return f"Dagster's campaign_launch_sensor starts it at {_clock_time(min(starts), now)}"
    return "Dagster's campaign_launch_sensor starts it within seconds (its daemon must run: 'make dev' starts one)"


# --- channel lines: --channel options and --config files --------------------------------


def _parse_channel_options(values: list[str]) -> tuple[list[campaigns.ChannelSpec], list[str]]:
    """The --channel values as sending lines, with every syntax problem found."""
    specs: list[campaigns.ChannelSpec] = []
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
        spec, found = _channel_from_fields(number, fields)
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


def _channel_from_fields(number: int, fields: dict[str, object]) -> tuple[campaigns.ChannelSpec | None, list[str]]:
    """One line's fields (strings from --channel, JSON values from --config) as a ChannelSpec.

    Only the shape is checked here; configure_campaign checks the values (server exists, email valid...).
    """
    where = f"channel {number}"
    problems = [
        f"{where}: unknown key '{key}' (expected {', '.join(_CHANNEL_KEYS)})"
        for key in fields
        if key not in _CHANNEL_KEYS
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
    spec = campaigns.ChannelSpec(
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


def _read_config(path: Path) -> tuple[list[str], list[campaigns.ChannelSpec]]:
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
    raw_channels = data.get("channels", [])
    if not isinstance(raw_channels, list):
        problems.append("channels must be a list of objects")
        raw_channels = []
    channels: list[campaigns.ChannelSpec] = []
    for number, fields in enumerate(raw_channels, start=1):
        if not isinstance(fields, dict):
            problems.append(f"channel {number} must be an object")
            continue
        spec, found = _channel_from_fields(number, fields)
        problems += found
        if spec is not None:
            channels.append(spec)
    if problems:
        raise ValidationError(what, problems)
    return files, channels


# --- output ------------------------------------------------------------------------------


def _progress_printer(campaign_id: int) -> Callable[[ImportReport], None]:
    last = time.monotonic()

    def progress(report: ImportReport) -> None:
        nonlocal last
        if time.monotonic() - last >= _PROGRESS_EVERY_S:
            last = time.monotonic()
            print(f"campaign {campaign_id}: {report.records_read:,} records read", file=sys.stderr)

    return progress


def _print_import_report(report: ImportReport) -> None:
    invalid = sum(report.invalid.values())
    reasons = ", ".join(f"{reason}: {count:,}" for reason, count in sorted(report.invalid.items()))
    print(f"records read:      {report.records_read:,} from {len(report.files)} file(s)")
    print(f"contacts:          {report.nbre_contacts:,} ({report.blacklisted_contacts:,} blacklisted)")
    print(f"duplicates merged: {report.duplicates_merged:,}")
    print(f"invalid:           {invalid:,}" + (f" ({reasons})" if reasons else ""))
    print(f"rate:              {report.contacts_per_s:,.0f} records/s over {report.duration_s:.2f} s")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M %Z")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _age(moment: datetime | None, now: datetime) -> str | None:
    """How long ago, in the largest whole unit: '12s ago', '3m ago', '2h ago', '1d ago'."""
    if moment is None:
        return None
    seconds = max(int((now - moment).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str) -> None:
    """Aligned columns, numbers to the right; `empty` says what to do when there is no row."""
    if not rows:
        print(empty)
        return
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], int | Decimal) and not isinstance(row[i], bool) for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(padded).rstrip()

    print(line(headers))
    print(line(["-" * width for width in widths]))
    for row in cells:
        print(line(row))
