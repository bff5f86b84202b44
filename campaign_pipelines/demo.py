"""The demo a first `make dev` finds: a sandbox server, the seed's Black Friday template and a
contact file of a few thousand made-up recipients, so the README's tour runs with no API key.

Called by the devserver at start. Each piece is created only when nothing of that name exists:
a server, template or file the user made (or changed) under the same name is left alone.
"""

from __future__ import annotations

import json
import os
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import psycopg

from campaign_pipelines import servers, templates
from campaign_pipelines.store import catalog

SERVER = "sandbox"
TEMPLATE = "Black Friday"
TEMPLATE_FILE = Path(__file__).resolve().parent.parent / "examples" / "black_friday.html"
CONTACT_FILE = "demo_contacts.json"
CONTACTS = 3000

# Reserved for documentation (RFC 2606/6761): nothing sent to them can reach anyone, and a
# dozen of them makes the report's per-domain table worth reading.
_DOMAINS = (
    "gmail.example", "orange.example", "free.example", "hotmail.example", "yahoo.example", "laposte.example",
    "sfr.example", "outlook.example", "icloud.example", "wanadoo.example", "bbox.example", "example.com",
)  # fmt: skip
_FIRST_NAMES = (
    "Alice", "Bruno", "Camille", "David", "Emma", "Farid", "Gaëlle", "Hugo", "Inès", "Julien", "Karima", "Louis",
    "Manon", "Nicolas", "Océane", "Pierre", "Quentin", "Rose", "Sofiane", "Théo", "Ursule", "Victor", "Yasmine", "Zoé",
)  # fmt: skip
_LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau", "Simon",
    "Laurent", "Lefebvre", "Michel", "Garcia", "Benali", "Roux", "Fontaine", "Chevalier", "Nguyen",
)  # fmt: skip
_CITIES = ("Paris", "Lyon", "Marseille", "Toulouse", "Nantes", "Bordeaux", "Lille", "Strasbourg", "Rennes", "Nice")
_SEGMENTS = ("nouveau", "fidèle", "vip", "inactif")


@dataclass(frozen=True)
class Seeded:
    """What the demo holds and whether this start created it (False: it was there, left alone)."""

    server: bool
    template: bool
    contact_file: bool
    server_url: str
    contact_path: Path


def seed(conn: psycopg.Connection, contacts_dir: Path, outbox: Path) -> Seeded:
    """Create whichever of the demo's server, template and contact file is missing."""
    existing = catalog.server_by_name(conn, SERVER)
    if existing is None:
        servers.add_server(conn, servers.ServerSpec(name=SERVER, provider="sandbox", url=f"file:{outbox}"))
    template = catalog.template_by_name(conn, TEMPLATE) is None
    if template:
        templates.save_template(conn, TEMPLATE, TEMPLATE_FILE.read_text(encoding="utf-8"))
    path = contacts_dir / CONTACT_FILE
    contact_file = not path.exists()
    if contact_file:
        write_contacts(path, CONTACTS)
    server_url = existing.url if existing is not None else f"file:{outbox}"
    return Seeded(existing is None, template, contact_file, server_url, path)


def write_contacts(path: Path, count: int) -> None:
    """`count` made-up contacts as a JSON array, the same ones every time; written whole or not at all."""
    rng = random.Random(2025)
    contacts = []
    for number in range(1, count + 1):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        local = unicodedata.normalize("NFKD", f"{first}.{last}.{number}".lower()).encode("ascii", "ignore").decode()
        contacts.append(
            {
                "email": f"{local}@{rng.choice(_DOMAINS)}",
                "first_name": first,
                "last_name": last,
                "city": rng.choice(_CITIES),
                "segment": rng.choice(_SEGMENTS),
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(contacts, ensure_ascii=False, indent=0), encoding="utf-8")
    os.replace(temporary, path)
