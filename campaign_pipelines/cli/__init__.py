"""The `campaigns` command: servers, templates, the two campaign steps, then launching,
controlling and watching the sends, and the global blacklist, from a terminal.

Each command is a thin shell over the plain functions the Dagster admin jobs call too
(servers, templates, campaigns, contacts.campaign_import, sending.campaign, blacklist): validation
and SQL live there. `watch` only reads the database; the sends themselves run in Dagster.
Exit status: 0 done, 1 refused (the message lists every problem), 2 bad command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import psycopg

from campaign_pipelines import settings
from campaign_pipelines.cli.blacklist import _add_blacklist_commands
from campaign_pipelines.cli.campaigns import _add_campaign_commands
from campaign_pipelines.cli.common import _Database, _Formatter, _Handler, _wrap
from campaign_pipelines.cli.servers import _add_server_commands
from campaign_pipelines.cli.templates import _add_template_commands
from campaign_pipelines.contacts.file_errors import ContactFileError
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.store.connection import connect, ensure_schema

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
