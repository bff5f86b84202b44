"""Send benchmark: one line's send loop against fake providers on loopback, no quota.

Generates N contacts as one NDJSON file and a ~1 KB newsletter template, then in the same run,
each measurement in a fresh process on a fresh database of the same server, against the fake
providers served by uvicorn in another process (tests.fakes, so they do not share our GIL):
- batch: LineSender on a Brevo line (1000 messages per call), all bookkeeping included
  (claims, PostgreSQL quota store, rendering, results, counters, heartbeats);
- minimal_batch: a sync httpx.Client POSTing the very 1000-message bodies the Brevo adapter builds
  for the same contacts, one after the other, nothing else (`batch_vs_minimal_batch_client`);
- batch at latency: the batch line again, on N/4 contacts, against fakes answering each call after
  `--latency-ms` (200 ms, as real providers do in 100-500 ms), against the bound of a client with
  the same window of calls in flight: window x 1000 / latency (`vs_latency_bound`), the window
  being the most calls the line had in flight at once (sending.window chooses it);
- single: LineSender on a SendGrid server with `batch_size = 1` (one message per call);
- minimal: a sync httpx.Client POSTing the very bodies the SendGrid adapter builds, nothing else;
- transport: the same bodies through ProviderClient (httpx's transport, as our adapters call it):
  what is left of `single` once our bookkeeping is taken away;
- seed: the seed's design: per contact, reserve a log row (INSERT … ON CONFLICT DO NOTHING
  RETURNING, committed), render, one POST, update the row (committed), and after each mail sent
  increment the campaign's sent_count (committed), as the seed's progress bar reads it.
The one-message measurements send N/10 contacts (`--single-contacts`): at ~1,000/s the full N would
take minutes each. Measure on a quiet machine: every figure is bound by latency and CPU shared by
the sender, PostgreSQL and the fake server. The last line is one JSON object (the figures, their
ratios, then the contact counts). Server: DATABASE_URL's, else 127.0.0.1:5432, else embedded.

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
from campaign_pipelines.providers import OutgoingMessage, ProviderClient, ProviderError, Sender
from campaign_pipelines.providers import get as get_provider
from campaign_pipelines.rendering import MessageRenderer
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.contacts import contact_table, outcome_table

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
# The batch line's calls: 1000 messages each (Brevo's maximum).
_BATCH = get_provider(_BATCH_PROVIDER).max_batch


def generate(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            record = {"email": f"user{i}@example.com", "first_name": _FIRST[i % 12], "city": _CITIES[rng.randrange(10)]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


# --- the fake providers, in their own process ------------------------------------------------


def _serve_fakes(latency_ms: float) -> None:
    """Child: serve the fakes until stdin closes (the parent ended or died)."""
    sys.path.insert(0, str(_ROOT))
    from tests.fakes.providers import FakeProviders
    from tests.fakes.server import running_fakes

    with running_fakes(FakeProviders(record_messages=False, latency_s=latency_ms / 1000)) as server:
        print(server.url, flush=True)
        sys.stdin.buffer.read()


@contextmanager
def fakes_process(latency_ms: float = 0) -> Iterator[str]:
    """A fresh fake provider server in another process, answering after `latency_ms`; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-fakes", "--latency-ms", str(latency_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
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


def provider_urls(base: str) -> dict[str, str]:
    """Each provider's URL on the fakes at `base`; their keys set in BENCH_<PROVIDER>_KEY."""
    sys.path.insert(0, str(_ROOT))
    from tests.fakes.providers import DEFAULT_KEYS, urls

    for provider, key in DEFAULT_KEYS.items():
        os.environ[f"BENCH_{provider.upper()}_KEY"] = key
    return urls(base)


# --- the measurements (each in a child process) --------------------------------------------


def configured_campaign(url: str, path: Path, provider: str, provider_url: str, batch_size: int | None) -> int:
    """A campaign configured with the file's contacts (not imported) and one line on `provider`."""
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
    return campaign_id


def launched_line(url: str, campaign_id: int) -> int:
    """Launch the imported campaign (its send indexes are built): its one line's id."""
    from campaign_pipelines.sending import campaign as lifecycle
    from campaign_pipelines.store import lines as line_sql

    with connect(url) as conn:
        lifecycle.launch(conn, campaign_id)
        (line,) = line_sql.lines_of(conn, campaign_id)
    return line.id


def _campaign(url: str, path: Path, provider: str, provider_url: str, batch_size: int | None) -> tuple[int, int]:
    """A launched campaign with the file's contacts and one line on `provider`: (campaign, line)."""
    campaign_id = configured_campaign(url, path, provider, provider_url, batch_size)
    import_campaign(lambda: connect(url), campaign_id, path.parent)
    line_id = launched_line(url, campaign_id)
    checkpoint(url)  # after the setup's writes: the measurement follows
    return campaign_id, line_id


def send_line(url: str, campaign_id: int, line_id: int) -> dict:
    """Run the line to its end as the send_channel op runs it (results recorded on a second
    connection): {"seconds", "emails"}; raises unless every contact was sent."""
    from campaign_pipelines.resources.http import HttpClientResource
    from campaign_pipelines.resources.quotas import QuotaResource
    from campaign_pipelines.sending.line import LineSender

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
            sql.SQL("SELECT count(*) FROM {} WHERE status = %s").format(outcome_table(campaign_id)),
            (ContactStatus.SENT,),
        ).fetchone()
    if outcome.status != "done" or sent != outcome.sent:
        raise RuntimeError(f"the line ended {outcome.status} ({outcome.reason}) with {sent} sent")
    return {"seconds": elapsed, "emails": outcome.sent, "window": outcome.most_in_flight}


def _run_line(url: str, path: Path, base: str, provider: str, batch_size: int | None) -> dict:
    campaign_id, line_id = _campaign(url, path, provider, provider_urls(base)[provider], batch_size)
    return send_line(url, campaign_id, line_id)


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
    return _replay(path, base, httpx.Client(timeout=_TIMEOUT), _SINGLE_PROVIDER, 1)


def run_transport(url: str, path: Path, base: str) -> dict:
    """The same requests through ProviderClient, the client our adapters use."""
    return _replay(path, base, ProviderClient(timeout=_TIMEOUT), _SINGLE_PROVIDER, 1)


def run_minimal_batch(url: str, path: Path, base: str) -> dict:
    """The floor of the batch line: the batch adapter's own 1000-message bodies, replayed by a bare httpx.Client."""
    provider = get_provider(_BATCH_PROVIDER)
    return _replay(path, base, httpx.Client(timeout=_TIMEOUT), _BATCH_PROVIDER, provider.max_batch)


def _replay(path: Path, base: str, client: httpx.Client | ProviderClient, name: str, batch: int) -> dict:
    """The requests `name`'s adapter makes for the file's messages in calls of `batch`, captured,
    then sent one after the other through `client` and timed."""
    provider = get_provider(name)
    provider_url = provider_urls(base)[name]
    api_key = os.environ[f"BENCH_{name.upper()}_KEY"]
    sender = Sender(_SENDER.sender_name, _SENDER.sender_email)
    requests: list[tuple[httpx.Request, int]] = []
    pending: list[int] = []

    def keep(request: httpx.Request) -> httpx.Response:
        requests.append((request, pending[-1]))
        return httpx.Response(599)  # unused: the captured calls are replayed below

    messages = _messages(path)
    with httpx.Client(transport=httpx.MockTransport(keep)) as capture:
        for start in range(0, len(messages), batch):
            chunk = messages[start : start + batch]
            pending.append(len(chunk))
            try:
                provider.send(
                    capture, url=provider_url, api_key=api_key, sender=sender, messages=chunk, idempotency_key=None
                )
            except ProviderError:
                pass  # the capture's answer is no provider's: the request it kept is all this needs
    calls = [
        (str(r.url), {k: v for k, v in r.headers.items() if k not in ("content-length", "host")}, r.content, n)
        for r, n in requests
    ]
    with client:
        started = time.perf_counter()
        for target, headers, content, _ in calls:
            response = client.post(target, content=content, headers=headers)
            if response.status_code >= 300:
                raise RuntimeError(f"the fake answered {response.status_code}: {response.text}")
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "emails": sum(n for *_, n in calls)}


def run_seed(url: str, path: Path, base: str) -> dict:
    """The seed's design: a committed log row before each mail, one POST, the row updated after."""
    provider = get_provider(_SINGLE_PROVIDER)
    provider_url = provider_urls(base)[_SINGLE_PROVIDER]
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
    "minimal_batch": run_minimal_batch,
    "single": run_single,
    "minimal": run_minimal,
    "transport": run_transport,
    "seed": run_seed,
}


def _child(method: str, path: Path, base: str) -> None:
    if method in ("minimal", "transport", "minimal_batch"):
        result = _RUNNERS[method]("", path, base)
    else:
        with scratch_database() as url:
            result = _RUNNERS[method](url, path, base)
    print(json.dumps(result))


def _measure(method: str, path: Path, latency_ms: float = 0) -> dict:
    with fakes_process(latency_ms) as base:
        out = subprocess.run(
            [sys.executable, __file__, "--child", method, "--file", str(path), "--fakes", base],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rate = result["emails"] / result["seconds"]
    at = f" at {latency_ms:g} ms a call" if latency_ms else ""
    print(
        f"{method:>13}{at}: {rate:>9,.0f} emails/s ({result['emails']:,} in {result['seconds']:.1f} s)",
        file=sys.stderr,
    )
    return {**result, "rate": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=200_000, help="contacts of the batch line (default 200,000)")
    parser.add_argument(
        "--single-contacts", type=int, help="contacts of the one-message measurements (default: --contacts / 10)"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=200.0,
        help="the fake's answer time for the latency measurement (default 200, as real providers: 100-500)",
    )
    parser.add_argument(
        "--latency-contacts", type=int, help="contacts of the latency measurement (default: --contacts / 4)"
    )
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=sorted(_RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fakes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fakes:
        _serve_fakes(args.latency_ms)
        return
    if args.child:
        _child(args.child, args.file, args.fakes)
        return

    single_n = args.single_contacts or max(1, args.contacts // 10)
    latency_n = args.latency_contacts or max(1, args.contacts // 4)
    with tempfile.TemporaryDirectory() as tmp:
        batch_file = Path(tmp) / "batch" / "contacts.ndjson"
        single_file = Path(tmp) / "single" / "contacts.ndjson"
        latency_file = Path(tmp) / "latency" / "contacts.ndjson"
        for path, n in ((batch_file, args.contacts), (single_file, single_n), (latency_file, latency_n)):
            path.parent.mkdir()
            generate(path, n)
        print(
            f"{args.contacts:,} contacts for the batch line, {single_n:,} for one-message calls; "
            f"template {len(_TEMPLATE.encode()):,} bytes",
            file=sys.stderr,
        )
        batch = _measure("batch", batch_file)["rate"]
        minimal_batch = _measure("minimal_batch", batch_file)["rate"]
        latency_run = _measure("batch", latency_file, args.latency_ms)
        at_latency, window = latency_run["rate"], latency_run["window"]
        single = _measure("single", single_file)["rate"]
        minimal = _measure("minimal", single_file)["rate"]
        transport = _measure("transport", single_file)["rate"]
        seed = _measure("seed", single_file)["rate"]
    print(
        json.dumps(
            {
                "batch_emails_per_s": round(batch),
                "batch_vs_minimal_batch_client": round(batch / minimal_batch, 2),
                "single_emails_per_s": round(single),
                "single_vs_minimal_client": round(single / minimal, 2),
                "single_vs_seed_design": round(single / seed, 2),
                "single_vs_bare_transport": round(single / transport, 2),
                "latency_ms": args.latency_ms,
                "window": window,
                "batch_emails_per_s_at_latency": round(at_latency),
                "vs_latency_bound": round(at_latency / (window * _BATCH / (args.latency_ms / 1000)), 2),
                "contacts": args.contacts,
                "single_contacts": single_n,
                "latency_contacts": latency_n,
            }
        )
    )


if __name__ == "__main__":
    main()
