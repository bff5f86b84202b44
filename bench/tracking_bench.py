"""Tracking app benchmark: opens and clicks from wrk against uvicorn; every answered hit checked in PostgreSQL.

On a fresh database of the server (DATABASE_URL's, else 127.0.0.1:5432, else embedded): a campaign
of N contacts that one line sent an hour ago (`--sent-ago`), with a few links. wrk (Debian's `wrk`,
loopback only, bounded in time) replays a shuffled mix of pixel and tracked-link URLs made with
make_token against two apps served by uvicorn with the same settings, side by side:
- ours: tracking_app.app:app;
- ceiling: a minimal Starlette app answering the same GIF to every URL and recording nothing.
They take turns (`--rounds` rounds each, `--duration` seconds in all per app), so load from the
rest of the machine falls on both alike. Then both are stopped with SIGTERM (ours writes its buffer)
and the events in tracking_events are counted against the requests wrk saw answered.
Human lines go to stderr; the last line is one JSON object:
{"hits_per_s", "p99_ms" (the worst round's), "lost", "vs_ceiling", ...}.

wrk stops each round with requests in flight: those the app answered but wrk no longer read are
recorded yet not counted as answered, so `recorded` may exceed `answered` by up to the connections
per round; `lost` counts only answered hits missing from PostgreSQL.

    python bench/tracking_bench.py --duration 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _database import scratch_database
from psycopg import sql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import tracking as tracking_sql
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.contacts import contact_table, create_contact_table, create_send_indexes, outcome_table
from campaign_pipelines.tracking.tokens import make_token
from tracking_app.pixel import GIF
from tracking_app.responses import NO_STORE
from tracking_app.settings import uvicorn_http_options

_ROOT = Path(__file__).resolve().parents[1]
_SECRET = "bench-tracking-secret"
_LINKS = [f"https://shop.example.com/bf/{name}" for name in ("femme", "homme", "maison", "enfant", "offres")]
_BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
_START_TIMEOUT_S = 30
_STOP_TIMEOUT_S = 60
_WRK_SLACK_S = 30
_WARMUP_S = 2

# --- the ceiling: the same GIF, nothing recorded ------------------------------------------------

_CEILING_GIF = Response(GIF, media_type="image/gif", headers={"Cache-Control": NO_STORE})


async def _gif(request: Request) -> Response:
    return _CEILING_GIF


ceiling_app = Starlette(routes=[Route("/{path:path}", _gif, methods=["GET"])])


def _campaign(url: str, contacts: int, sent_ago_s: float) -> tuple[int, list[int]]:
    """A campaign whose contacts one line sent `sent_ago_s` seconds ago, with its links."""
    with connect(url) as conn:
        servers.add_server(conn, servers.ServerSpec(name="bench", provider="sandbox"))
        templates.save_template(conn, "bench", "<p>Bonjour</p>")
        campaign_id = campaigns.create_campaign(conn, name="bench", subject="bench", template="bench")
        create_contact_table(conn, campaign_id)
        ids = conn.execute(
            sql.SQL(
                "INSERT INTO {} (email, attributes) SELECT 'user' || i || '@example.com', '{{}}'"
                " FROM generate_series(1, %s) AS i RETURNING id"
            ).format(contact_table(campaign_id)),
            (contacts,),
        ).fetchall()
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (contact_id, status, at) SELECT id, %s, now() - make_interval(secs => %s) FROM {}"
            ).format(outcome_table(campaign_id), contact_table(campaign_id)),
            (ContactStatus.SENT, sent_ago_s),
        )
        conn.execute(
            "INSERT INTO campaign_channels (campaign_id, position, sender_name, sender_email, server_id, last_sent_at)"
            " SELECT %s, 1, 'Bench', 'bench@example.com', id, now() - make_interval(secs => %s)"
            " FROM servers WHERE name = 'bench'",
            (campaign_id, sent_ago_s),
        )
        tracking_sql.save_links(conn, campaign_id, _LINKS)
        create_send_indexes(conn, campaign_id)  # as its launch would
    return campaign_id, [row[0] for row in ids]


@contextmanager
def _line_sending(url: str, campaign_id: int, sending: bool) -> Iterator[None]:
    """While the block runs, the campaign's line looks busy sending (last_sent_at kept at now)."""
    if not sending:
        yield
        return
    stop = threading.Event()

    def touch() -> None:
        with connect(url) as conn:
            conn.execute("UPDATE campaign_channels SET last_sent_at = now() WHERE campaign_id = %s", (campaign_id,))
            while not stop.wait(1):
                conn.execute("UPDATE campaign_channels SET last_sent_at = now() WHERE campaign_id = %s", (campaign_id,))

    thread = threading.Thread(target=touch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _recorded(url: str) -> dict[str, int]:
    with connect(url) as conn:
        rows = conn.execute("SELECT kind, count(*) FROM tracking_events GROUP BY kind").fetchall()
    names = {tracking_sql.OPEN: "opens", tracking_sql.CLICK: "clicks"}
    return {names.get(kind, str(kind)): count for kind, count in rows}


# --- load ------------------------------------------------------------------------------------------


def _paths(campaign_id: int, contact_ids: list[int], click_share: float, seed: int = 7) -> list[str]:
    """One pixel per contact, and clicks on random links for a share of them, shuffled."""
    rng = random.Random(seed)
    secret = _SECRET.encode()
    paths = []
    for contact_id in contact_ids:
        token = make_token(secret, campaign_id, contact_id)
        paths.append(f"/o/{token}.gif")
        if rng.random() < click_share / (1 - click_share):
            paths.append(f"/c/{token}/{rng.randrange(len(_LINKS))}")
    rng.shuffle(paths)
    return paths


_LUA = """
local paths = {%(paths)s}
local count = #paths
local next_path = 0
wrk.headers["User-Agent"] = "%(agent)s"

request = function()
  next_path = next_path %% count + 1
  return wrk.format("GET", paths[next_path])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, "status": %%d,'
    .. ' "timeout": %%d, "p50_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _write_script(folder: Path, paths: list[str]) -> Path:
    script = folder / "hits.lua"
    script.write_text(_LUA % {"paths": ",".join(f'"{path}"' for path in paths), "agent": _BROWSER})
    return script


def _wrk(url: str, script: Path, *, duration_s: int, connections: int, threads: int) -> dict:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=duration_s + _WRK_SLACK_S)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["answered"] = result["requests"] - result["status"]
    return result


# --- the app under uvicorn ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _uvicorn(app: str, env: dict[str, str], options: list[str]) -> Iterator[str]:
    """uvicorn serving `app` on loopback; stopped with SIGTERM (and waited for) when the block ends."""
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), *options]
    command += ["--app-dir", str(_ROOT / "bench"), "--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=_ROOT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited ({process.returncode}) before answering")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer within {_START_TIMEOUT_S} s")
            time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(f"uvicorn still running {_STOP_TIMEOUT_S} s after SIGTERM") from None


def _uvicorn_options(workers: int) -> list[str]:
    """The HTTP options the app is served with (h11 with its header bound), on uvloop when installed."""
    options = ["--workers", str(workers), *uvicorn_http_options()]
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return options
    return [*options, "--loop", "uvloop"]


class _Load:
    """The wrk rounds run against one app, added up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.answered = 0  # warm-up included: every answered hit must be recorded
        self.measured = 0
        self.seconds = 0.0
        self.p99_ms: list[float] = []

    def run(self, base: str, script: Path, args: argparse.Namespace, seconds: int, *, warmup: bool = False) -> None:
        result = _wrk(base, script, duration_s=seconds, connections=args.connections, threads=args.threads)
        self.answered += result["answered"]
        errors = {key: result[key] for key in ("connect", "read", "write", "status", "timeout") if result[key]}
        rate = result["answered"] / (result["duration_us"] / 1e6)
        if not warmup:
            self.measured += result["answered"]
            self.seconds += result["duration_us"] / 1e6
            self.p99_ms.append(result["p99_us"] / 1000)
        print(
            f"{self.name:>8}{' warm-up' if warmup else ''}: {rate:>9,.0f} hits/s,"
            f" p50 {result['p50_us'] / 1000:.1f} ms, p99 {result['p99_us'] / 1000:.1f} ms,"
            f" max {result['max_us'] / 1000:.0f} ms{f', errors {errors}' if errors else ''}",
            file=sys.stderr,
        )

    @property
    def hits_per_s(self) -> float:
        return self.measured / self.seconds


def _load_average() -> float:
    return os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=30, help="seconds of load per app (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="turns each app takes within the duration (default 3)")
    parser.add_argument("--contacts", type=int, default=10_000, help="contacts of the campaign (default 10,000)")
    parser.add_argument(
        "--sent-ago", type=float, default=3600, help="seconds since the contacts were sent (default 3600)"
    )
    parser.add_argument(
        "--sending",
        action="store_true",
        help="the campaign's line keeps sending during the run: each batch of events then also looks up"
        " the send time of its contacts (the prefetch flag), as right after a send",
    )
    parser.add_argument("--click-share", type=float, default=0.3, help="share of clicks among hits (default 0.3)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: it is Debian's `wrk` package (apt-get install -y wrk)", file=sys.stderr)
        return 2

    round_s = max(1, args.duration // args.rounds)
    print(f"load average before the run: {_load_average():.2f} (2 cores; measure when quiet)", file=sys.stderr)
    with scratch_database() as url:
        campaign_id, contact_ids = _campaign(url, args.contacts, args.sent_ago)
        paths = _paths(campaign_id, contact_ids, args.click_share)
        env = {**os.environ, "DATABASE_URL": url, "TRACKING_SECRET": _SECRET}
        with tempfile.TemporaryDirectory() as tmp:
            script = _write_script(Path(tmp), paths)
            print(
                f"campaign of {len(contact_ids):,} contacts, {len(_LINKS)} links; {len(paths):,} distinct URLs;"
                f" wrk -t{args.threads} -c{args.connections} for {args.duration} s per app"
                f" in {args.rounds} rounds of {round_s} s",
                file=sys.stderr,
            )
            ours, ceiling = _Load("ours"), _Load("ceiling")
            options = _uvicorn_options(args.workers)
            print(f"uvicorn {' '.join(options)}", file=sys.stderr)
            # Both apps stay up and take turns, so a neighbour's load on the machine hits both alike.
            with (
                _uvicorn("tracking_app.app:app", env, options) as ours_url,
                _uvicorn("tracking_bench:ceiling_app", env, options) as ceiling_url,
                _line_sending(url, campaign_id, args.sending),
            ):
                ours.run(ours_url, script, args, _WARMUP_S, warmup=True)
                ceiling.run(ceiling_url, script, args, _WARMUP_S, warmup=True)
                for _ in range(args.rounds):
                    ours.run(ours_url, script, args, round_s)
                    ceiling.run(ceiling_url, script, args, round_s)
            # Both were stopped with SIGTERM: our app has written its buffer.
            recorded = _recorded(url)

    answered = ours.answered
    total = sum(recorded.values())
    print(
        f"answered per wrk: {answered:,}; recorded in PostgreSQL: {total:,} ({recorded});"
        f" recorded but answered after wrk stopped reading: {max(0, total - answered):,}",
        file=sys.stderr,
    )
    print(f"load average after the run: {_load_average():.2f}", file=sys.stderr)
    print(
        json.dumps(
            {
                "hits_per_s": round(ours.hits_per_s),
                "p99_ms": round(max(ours.p99_ms), 1),
                "lost": max(0, answered - total),
                "vs_ceiling": round(ours.hits_per_s / ceiling.hits_per_s, 2),
                "ceiling_hits_per_s": round(ceiling.hits_per_s),
                "ceiling_p99_ms": round(max(ceiling.p99_ms), 1),
                "answered": answered,
                "recorded": total,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
