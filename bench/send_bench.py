"""Send benchmark: one line's send loop against fake providers on loopback, no quota.

Generates N contacts as one NDJSON file and a ~1 KB newsletter template, then in the same run,
each measurement in a fresh process on a fresh database of the same server, against the fake
providers served by uvicorn in another process (tests.fakes, so they do not share our GIL):
- batch: LineSender on a Brevo line (1000 messages per call), all bookkeeping included
  (claims, PostgreSQL quota store, rendering, results, counters, heartbeats);
- single: LineSender on a SendGrid server with `batch_size = 1` (one message per call);
- minimal: a sync httpx.Client POSTing the very bodies the SendGrid adapter builds, nothing else;
- transport: the same bodies through ProviderClient (httpx's transport, as our adapters call it):
  what is left of `single` once our bookkeeping is taken away;
- seed: the seed's design: per contact, reserve a log row (INSERT … ON CONFLICT DO NOTHING
  RETURNING, committed), render, one POST, update the row (committed), and after each mail sent
  increment the campaign's sent_count (committed), as the seed's progress bar reads it.
The one-message measurements send N/10 contacts (`--single-contacts`): at ~1,000/s the full N would
take minutes each. Measure on a quiet machine: every figure is bound by latency and CPU shared by
the sender, PostgreSQL and the fake server. The last line is one JSON object (the four figures,
the ratio to the bare transport, then the contact counts). Server: DATABASE_URL's, else 127.0.0.1:5432, else embedded.

    python bench/send_bench.py --contacts 200000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _database import checkpoint, scratch_database
from psycopg import sql

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.contacts.campaign_import import import_campaign
from campaign_pipelines.providers import OutgoingMessage, ProviderClient, Sender
from campaign_pipelines.providers import get as get_provider
from campaign_pipelines.rendering import MessageRenderer
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.contacts import contact_table

_ROOT = Path(__file__).resolve().parents[1]
_FIRST = ["Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Gaëlle", "Hugo", "Inès", "Jules", "Léa", "Manon"]
_CITIES = ["Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Lille", "Bordeaux", "Rennes", "Reims"]
_SUBJECT = "{{ first_name }}, vos offres Black Friday"
_TEMPLATE = """<html><body style="font-family: Arial, sans-serif; color: #222">
<h1>Black Friday : jusqu'à -50 %</h1>
<p>Bonjour {{ first_name }},</p>
<p>Cette semaine seulement, toute la boutique est en promotion : vêtements, chaussures, accessoires
et maison. Les offres sont valables dans la limite des stocks disponibles, jusqu'à dimanche minuit.</p>
<p>Nos magasins de {{ city }} vous accueillent aussi avec des remises exclusives et la livraison
gratuite dès 30 € d'achat.</p>
<table><tr><td><a href="https://shop.example.com/bf/femme">Femme</a></td>
<td><a href="https://shop.example.com/bf/homme">Homme</a></td>
<td><a href="https://shop.example.com/bf/maison">Maison</a></td></tr></table>
<p><a href="https://shop.example.com/bf?utm_source=email&amp;utm_campaign=bf">Voir toutes les offres</a></p>
<p style="font-size: 11px; color: #888">Vous recevez ce message car vous êtes inscrit(e) à notre
lettre d'information. <a href="https://shop.example.com/unsubscribe">Se désabonner</a>.
Boutique Exemple, 1 rue de l'Exemple, 75001 Paris.</p>
</body></html>
"""
_SENDER = campaigns.LineSpec("Boutique Exemple", "news@shop.example.com", "bench")
_SINGLE_PROVIDER = "sendgrid"
_BATCH_PROVIDER = "brevo"
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def generate(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            record = {"email": f"user{i}@example.com", "first_name": _FIRST[i % 12], "city": _CITIES[rng.randrange(10)]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


# --- the fake providers, in their own process ------------------------------------------------


def _serve_fakes() -> None:
    """Child: serve the fakes until stdin closes (the parent ended or died)."""
    sys.path.insert(0, str(_ROOT))
    from tests.fakes.providers import FakeProviders
    from tests.fakes.server import running_fakes

    with running_fakes(FakeProviders(record_messages=False)) as server:
        print(server.url, flush=True)
        sys.stdin.buffer.read()


@contextmanager
def _fakes_process() -> Iterator[str]:
    """A fresh fake provider server in another process; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-fakes"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("the fake provider server did not start")
        yield url
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _provider_urls(base: str) -> dict[str, str]:
    sys.path.insert(0, str(_ROOT))
    from tests.fakes.providers import DEFAULT_KEYS, urls

    for provider, key in DEFAULT_KEYS.items():
        os.environ[f"BENCH_{provider.upper()}_KEY"] = key
    return urls(base)


# --- the measurements (each in a child process) --------------------------------------------


def _campaign(url: str, path: Path, provider: str, provider_url: str, batch_size: int | None) -> tuple[int, int]:
    """A launched campaign with the file's contacts and one line on `provider`: (campaign, line)."""
    from campaign_pipelines.sending import campaign as lifecycle
    from campaign_pipelines.store import lines as line_sql

    with connect(url) as conn:
        servers.add_server(
            conn,
            servers.ServerSpec(
                name="bench",
                provider=provider,
                url=provider_url,
                api_key_env=f"BENCH_{provider.upper()}_KEY",
                batch_size=batch_size,
            ),
        )
        templates.save_template(conn, "bench", _TEMPLATE)
        campaign_id = campaigns.create_campaign(conn, name="bench", subject=_SUBJECT, template="bench")
        campaigns.configure_campaign(
            conn, campaign_id, contact_files=[path.name], lines=[_SENDER], contacts_dir=path.parent
        )
    import_campaign(lambda: connect(url), campaign_id, path.parent)
    with connect(url) as conn:
        lifecycle.launch(conn, campaign_id)
        (line,) = line_sql.lines_of(conn, campaign_id)
    checkpoint(url)  # after the setup's writes: the measurement follows
    return campaign_id, line.id


def _run_line(url: str, path: Path, base: str, provider: str, batch_size: int | None) -> dict:
    from campaign_pipelines.resources.http import HttpClientResource
    from campaign_pipelines.resources.quotas import QuotaResource
    from campaign_pipelines.sending.line import LineSender

    campaign_id, line_id = _campaign(url, path, provider, _provider_urls(base)[provider], batch_size)
    # As the send_channel op runs it: results recorded on a second connection.
    with connect(url) as conn, connect(url) as results_conn, HttpClientResource().client() as client:
        sender = LineSender(
            conn,
            line_id,
            run_id=uuid.uuid4().hex,
            quotas=QuotaResource().store(conn),
            client=client,
            results_conn=results_conn,
        )
        started = time.perf_counter()
        outcome = sender.run()
        elapsed = time.perf_counter() - started
        (sent,) = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE send_status = %s").format(contact_table(campaign_id)),
            (ContactStatus.SENT,),
        ).fetchone()
    if outcome.status != "done" or sent != outcome.sent:
        raise RuntimeError(f"the line ended {outcome.status} ({outcome.reason}) with {sent} sent")
    return {"seconds": elapsed, "emails": outcome.sent}


def run_batch(url: str, path: Path, base: str) -> dict:
    return _run_line(url, path, base, _BATCH_PROVIDER, None)


def run_single(url: str, path: Path, base: str) -> dict:
    return _run_line(url, path, base, _SINGLE_PROVIDER, 1)


def _messages(path: Path) -> list[OutgoingMessage]:
    renderer = MessageRenderer(_SUBJECT, _TEMPLATE)
    messages = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f):
            record = json.loads(line)
            email = record.pop("email")
            subject, html, text = renderer.render(email, record)[:3]
            messages.append(OutgoingMessage(f"1-{number}", email, subject, html, text, {}))
    return messages


def run_minimal(url: str, path: Path, base: str) -> dict:
    """The floor of one-message calls: the adapter's own requests, replayed by a bare httpx.Client."""
    return _replay(path, base, httpx.Client(timeout=_TIMEOUT))


def run_transport(url: str, path: Path, base: str) -> dict:
    """The same requests through ProviderClient, the client our adapters use."""
    return _replay(path, base, ProviderClient(timeout=_TIMEOUT))


def _replay(path: Path, base: str, client: httpx.Client | ProviderClient) -> dict:
    provider = get_provider(_SINGLE_PROVIDER)
    provider_url = _provider_urls(base)[_SINGLE_PROVIDER]
    api_key = os.environ[f"BENCH_{_SINGLE_PROVIDER.upper()}_KEY"]
    sender = Sender(_SENDER.sender_name, _SENDER.sender_email)
    requests: list[httpx.Request] = []

    def keep(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(202)

    with httpx.Client(transport=httpx.MockTransport(keep)) as capture:
        for message in _messages(path):
            provider.send(
                capture, url=provider_url, api_key=api_key, sender=sender, messages=[message], idempotency_key=None
            )
    calls = [
        (str(r.url), {k: v for k, v in r.headers.items() if k not in ("content-length", "host")}, r.content)
        for r in requests
    ]
    with client:
        started = time.perf_counter()
        for target, headers, content in calls:
            response = client.post(target, content=content, headers=headers)
            if response.status_code != 202:
                raise RuntimeError(f"the fake answered {response.status_code}: {response.text}")
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "emails": len(calls)}


def run_seed(url: str, path: Path, base: str) -> dict:
    """The seed's design: a committed log row before each mail, one POST, the row updated after."""
    provider = get_provider(_SINGLE_PROVIDER)
    provider_url = _provider_urls(base)[_SINGLE_PROVIDER]
    campaign_id, _ = _campaign(url, path, _SINGLE_PROVIDER, provider_url, 1)
    api_key = os.environ[f"BENCH_{_SINGLE_PROVIDER.upper()}_KEY"]
    sender = Sender(_SENDER.sender_name, _SENDER.sender_email)
    renderer = MessageRenderer(_SUBJECT, _TEMPLATE)
    table = contact_table(campaign_id)
    with connect(url) as conn, httpx.Client(timeout=_TIMEOUT) as client:
        conn.execute(
            "CREATE TABLE seed_email_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " campaign_id bigint NOT NULL, contact_id bigint NOT NULL, status text NOT NULL,"
            " message_id text, error text, sent_at timestamptz, UNIQUE (campaign_id, contact_id))"
        )
        started = time.perf_counter()
        sent, last = 0, 0
        while True:
            chunk = conn.execute(
                sql.SQL("SELECT id, email, attributes FROM {} WHERE id > %s ORDER BY id LIMIT 1000").format(table),
                (last,),
            ).fetchall()
            if not chunk:
                break
            for contact_id, email, attributes in chunk:
                last = contact_id
                reserved = conn.execute(
                    "INSERT INTO seed_email_log (campaign_id, contact_id, status) VALUES (%s, %s, 'pending')"
                    " ON CONFLICT DO NOTHING RETURNING id",
                    (campaign_id, contact_id),
                ).fetchone()
                if reserved is None:
                    continue
                subject, html, text = renderer.render(email, attributes)[:3]
                message = OutgoingMessage(f"{campaign_id}-{contact_id}", email, subject, html, text, {})
                (delivery,) = provider.send(
                    client, url=provider_url, api_key=api_key, sender=sender, messages=[message], idempotency_key=None
                )
                conn.execute(
                    "UPDATE seed_email_log SET status = %s, message_id = %s, error = %s, sent_at = now() WHERE id = %s",
                    ("sent" if delivery.ok else "failed", delivery.provider_message_id, delivery.error, reserved[0]),
                )
                if delivery.ok:  # "après chaque envoi réussi, le Job incrémente … sent_count"
                    conn.execute("UPDATE campaigns SET sent_count = sent_count + 1 WHERE id = %s", (campaign_id,))
                    sent += 1
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "emails": sent}


_RUNNERS = {
    "batch": run_batch,
    "single": run_single,
    "minimal": run_minimal,
    "transport": run_transport,
    "seed": run_seed,
}


def _child(method: str, path: Path, base: str) -> None:
    if method in ("minimal", "transport"):
        result = _RUNNERS[method]("", path, base)
    else:
        with scratch_database() as url:
            result = _RUNNERS[method](url, path, base)
    print(json.dumps(result))


def _measure(method: str, path: Path) -> float:
    with _fakes_process() as base:
        out = subprocess.run(
            [sys.executable, __file__, "--child", method, "--file", str(path), "--fakes", base],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rate = result["emails"] / result["seconds"]
    print(f"{method:>8}: {rate:>9,.0f} emails/s ({result['emails']:,} in {result['seconds']:.1f} s)", file=sys.stderr)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=200_000, help="contacts of the batch line (default 200,000)")
    parser.add_argument(
        "--single-contacts", type=int, help="contacts of the one-message measurements (default: --contacts / 10)"
    )
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=sorted(_RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fakes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fakes:
        _serve_fakes()
        return
    if args.child:
        _child(args.child, args.file, args.fakes)
        return

    single_n = args.single_contacts or max(1, args.contacts // 10)
    with tempfile.TemporaryDirectory() as tmp:
        batch_file = Path(tmp) / "batch" / "contacts.ndjson"
        single_file = Path(tmp) / "single" / "contacts.ndjson"
        for path, n in ((batch_file, args.contacts), (single_file, single_n)):
            path.parent.mkdir()
            generate(path, n)
        print(
            f"{args.contacts:,} contacts for the batch line, {single_n:,} for one-message calls; "
            f"template {len(_TEMPLATE.encode()):,} bytes",
            file=sys.stderr,
        )
        batch = _measure("batch", batch_file)
        single = _measure("single", single_file)
        minimal = _measure("minimal", single_file)
        transport = _measure("transport", single_file)
        seed = _measure("seed", single_file)
    print(
        json.dumps(
            {
                "batch_emails_per_s": round(batch),
                "single_emails_per_s": round(single),
                "single_vs_minimal_client": round(single / minimal, 2),
                "single_vs_seed_design": round(single / seed, 2),
                "single_vs_bare_transport": round(single / transport, 2),
                "contacts": args.contacts,
                "single_contacts": single_n,
            }
        )
    )


if __name__ == "__main__":
    main()
