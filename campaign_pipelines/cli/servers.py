"""`campaigns server ...`: register, update, list, disable and enable sending servers."""

from __future__ import annotations

import argparse
import sys

from campaign_pipelines import servers
from campaign_pipelines.cli.common import _command, _Database, _group
from campaign_pipelines.cli.output import _print_table
from campaign_pipelines.store import catalog


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
        + "; see docs/providers.md)",
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
        "--timezone",
        default=argparse.SUPPRESS if updating else "UTC",
        metavar="ZONE",
        help="time zone in which sending days are counted, e.g. Europe/Paris"
        + (" (default: unchanged)" if updating else " (default: UTC)"),
    )
    for flag, meaning, default in (
        ("--daily-cap", "at most N sends a day on this account, all campaigns together; 'none' = no cap", "none"),
        (
            "--batch-size",
            "messages per API call; 1 = one message per call, 'none' = the provider's maximum",
            "the provider's maximum",
        ),
        (
            "--calls-in-flight",
            "at most N API calls in flight at once per line; 'none' = the provider's documented rate",
            "the provider's documented rate",
        ),
    ):
        parser.add_argument(
            flag,
            type=_count_or_none,
            default=unchanged,
            metavar="N",
            help=meaning + (" (default: unchanged)" if updating else f" (default: {default})"),
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
        calls_in_flight=args.calls_in_flight,
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
        calls_in_flight=getattr(args, "calls_in_flight", current.calls_in_flight),
    )
    server_id, _ = servers.save_server(db.conn, spec)
    print(f"server {server_id} '{current.name}' updated")


def _server_list(args: argparse.Namespace, db: _Database) -> None:
    rows = catalog.list_servers(db.conn)
    _print_table(
        ("id", "name", "provider", "url", "api key", "active", "cap/day", "time zone", "batch", "in flight"),
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
                s.calls_in_flight,
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
