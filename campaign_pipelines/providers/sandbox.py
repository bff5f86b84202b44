"""The `sandbox` provider: no network and no API key; each message becomes an RFC 5322 `.eml` file.

For demos and for a newcomer without provider accounts: the send job runs end to end and every
"sent" message can be opened in a mail client. The server's URL names the folder, `file:<folder>`
(relative to the working directory unless absolute; created when missing). Files are named after
the send id and written whole (temporary file, then rename), so a reader never sees half a message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path

from campaign_pipelines.providers.base import (
    Delivery,
    OutgoingMessage,
    Provider,
    Rejected,
    Sender,
    ensure_batch,
    ensure_header_safe,
)
from campaign_pipelines.providers.client import ProviderClient

SEND_ID_HEADER = "X-Campaign-Send-Id"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def outbox(url: str) -> Path:
    """The folder a `file:` URL names (`file:var/outbox`, `file:/srv/outbox`, `file:///srv/outbox`)."""
    if not url.startswith("file:"):
        raise Rejected(f"sandbox: the server URL {url!r} must be file:<folder>")
    where = url.removeprefix("file:")
    if where.startswith("//"):
        where = where[2:]
    if not where:
        raise Rejected("sandbox: the server URL file: names no folder")
    return Path(where).expanduser()


def eml_name(send_id: str) -> str:
    return f"{_UNSAFE.sub('_', send_id)}.eml"


class Sandbox(Provider):
    name = "sandbox"
    default_url = "file:var/outbox"
    local = True
    max_batch = 1000
    max_call_bytes = 256 * 1024 * 1024

    def send(
        self,
        client: ProviderClient,
        *,
        url: str,
        api_key: str,
        sender: Sender,
        messages: Sequence[OutgoingMessage],
        idempotency_key: str | None,
    ) -> list[Delivery]:
        ensure_batch(self, messages)
        ensure_header_safe(self, sender, messages)
        folder = outbox(url)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise Rejected(f"sandbox: cannot create the outbox folder {folder}: {error.strerror}") from None
        return [self._write(folder, sender, message) for message in messages]

    def _write(self, folder: Path, sender: Sender, message: OutgoingMessage) -> Delivery:
        email = EmailMessage()
        message_id = make_msgid(domain=sender.domain or "sandbox.invalid")
        email["From"] = formataddr((sender.name, sender.email)) if sender.name else sender.email
        email["To"] = message.to_email
        email["Subject"] = message.subject
        email["Date"] = formatdate(localtime=True)
        email["Message-ID"] = message_id
        email[SEND_ID_HEADER] = message.send_id
        for name, value in message.headers.items():
            email[name] = value
        email.set_content(message.text or "")
        email.add_alternative(message.html, subtype="html")
        path = folder / eml_name(message.send_id)
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            temporary.write_bytes(bytes(email))
            os.replace(temporary, path)
        except OSError as error:
            return Delivery.refused(message.send_id, f"sandbox: cannot write {path}: {error.strerror}")
        return Delivery.accepted(message.send_id, message_id)


PROVIDER = Sandbox()
