"""`campaigns campaign ...`: create and configure (the two steps), list, status, launch, control
and resend-unknown; `report` and `watch` are registered here and live in their own modules."""

from __future__ import annotations

import argparse
from pathlib import Path

from campaign_pipelines import campaigns, settings
from campaign_pipelines.cli.common import (
    _campaign,
    _command,
    _Database,
    _group,
    _Handler,
    _positive_seconds,
    _wrap,
)
from campaign_pipelines.cli.lines import _parse_line_options, _read_config
from campaign_pipelines.cli.output import _print_import_report, _progress_printer
from campaign_pipelines.cli.report import _campaign_report
from campaign_pipelines.cli.status import _campaign_list, _campaign_status
from campaign_pipelines.cli.watch import _campaign_watch
from campaign_pipelines.contacts.campaign_import import failure_message, import_campaign
from campaign_pipelines.contacts.file_errors import ContactFileError
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.sending import campaign as lifecycle
from campaign_pipelines.statuses import CampaignStatus, ContactStatus
from campaign_pipelines.store import sending as send_sql

# The operator's controls (their help), and what to say once each is done.
_CONTROLS = {
    "pause": "Pause a running campaign: its lines stop within seconds and nothing is lost.",
    "resume": "Resume a paused campaign: Dagster's stalled_lines_sensor starts its lines again where they were.",
    "cancel": "Cancel a campaign for good: its lines stop within seconds and the contacts not sent yet never are.",
}
_CONTROL_DONE = {
    CampaignStatus.PAUSED: (
        "its running lines stop within seconds; nothing is lost. Resume with 'campaigns campaign resume {id}'"
    ),
    CampaignStatus.RUNNING: (
        "Dagster's stalled_lines_sensor restarts its lines; follow with 'campaigns campaign watch {id}'"
    ),
    CampaignStatus.CANCELLED: "its running lines stop within seconds; the contacts not sent yet will not be sent",
}

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
        dest="line_options",
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

    _campaign_command(commands, "status", _campaign_status, "Show a campaign, its progress and its sending lines.")

    report = _campaign_command(
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
    report.add_argument("--json", action="store_true", help="print the report as one JSON object, for scripts")

    _campaign_command(
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

    for name, summary in _CONTROLS.items():
        _campaign_command(commands, name, _campaign_control, summary).set_defaults(action=name)

    resend = _campaign_command(
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
    resend.add_argument(
        "--yes",
        action="store_true",
        help="confirm: these contacts may receive the campaign twice (without it, nothing changes)",
    )

    watch = _campaign_command(
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
    watch.add_argument(
        "--interval",
        type=_positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="seconds between two reads of the database (default: %(default)s)",
    )
    watch.add_argument("--once", action="store_true", help="show the progress once and exit")


def _campaign_command(
    commands: argparse._SubParsersAction, name: str, handler: _Handler, summary: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A command on one campaign: its first argument is the campaign's id."""
    parser = _command(commands, name, handler, summary, epilog)
    parser.add_argument("campaign_id", type=int, metavar="ID", help="campaign id")
    return parser


def _campaign_create(args: argparse.Namespace, db: _Database) -> None:
    campaign_id = campaigns.create_campaign(db.conn, name=args.name, subject=args.subject, template=args.template)
    print(f"campaign {campaign_id} created (draft)")
    print(f"next: campaigns campaign configure {campaign_id} --file ... --channel ...")


def _read_lines(args: argparse.Namespace) -> None:
    """Turn --channel values (or the --config file) into `args.files` and `args.lines`."""
    parser: argparse.ArgumentParser = args.command_parser
    if args.config is not None:
        if args.files or args.line_options:
            parser.error("give --config, or --file and --channel, not both")
        args.files, args.lines = _read_config(Path(args.config).expanduser())
        return
    args.lines, problems = _parse_line_options(args.line_options)
    if problems:
        parser.error("bad --channel value:\n" + "\n".join(f"  - {problem}" for problem in problems))


def _campaign_configure(args: argparse.Namespace, db: _Database) -> None:
    files, lines = args.files, args.lines
    contacts_dir = (args.contacts_dir or settings.contacts_dir()).expanduser().resolve()
    campaign = campaigns.configure_campaign(
        db.conn, args.campaign_id, contact_files=files, lines=lines, contacts_dir=contacts_dir
    )
    print(
        f"campaign {campaign.id} '{campaign.name}' scheduled with {len(lines)} sending line(s)"
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


def _campaign_launch(args: argparse.Namespace, db: _Database) -> None:
    before = _campaign(db.conn, args.campaign_id)
    if before.status == CampaignStatus.RUNNING:
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
        unknown = send_sql.status_counts(db.conn, campaign.id).get(ContactStatus.UNKNOWN, 0)
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
