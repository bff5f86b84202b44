"""The sandbox provider: every message becomes a parseable .eml file in the outbox folder."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from campaign_pipelines import providers
from campaign_pipelines.providers import Rejected, Sender, deliver
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.providers.sandbox import outbox
from tests.providers.support import message, messages

SENDER = Sender("Équipe Acme", "news@example.com")


def _send(url: str, batch) -> list:
    with ProviderClient(timeout=2.0) as client:
        return deliver(client, providers.get("sandbox"), url=url, api_key="", sender=SENDER, messages=batch)


def test_each_message_is_an_eml_file_with_all_its_headers(tmp_path: Path) -> None:
    batch = [*messages(2), message(7, subject="Été : nos nouveautés", to="élodie@example.org")]

    deliveries = _send(f"file:{tmp_path / 'outbox'}", batch)

    assert all(delivery.ok for delivery in deliveries)
    for sent, delivery in zip(batch, deliveries, strict=True):
        path = tmp_path / "outbox" / f"{sent.send_id}.eml"
        parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert parsed["To"] == sent.to_email
        assert parsed["Subject"] == sent.subject
        assert parsed["From"] == "Équipe Acme <news@example.com>"
        assert parsed["Message-ID"] == delivery.provider_message_id
        assert parsed["X-Campaign-Send-Id"] == sent.send_id
        assert parsed["List-Unsubscribe"] == sent.headers["List-Unsubscribe"]
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed.get_body(("html",)).get_content() == sent.html
        assert parsed.get_body(("plain",)).get_content() == sent.text
    assert sorted(path.name for path in (tmp_path / "outbox").iterdir()) == ["c7-r0.eml", "c7-r1.eml", "c7-r7.eml"]


def test_a_relative_folder_is_under_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    _send("file:var/outbox", [message(1)])

    assert (tmp_path / "var" / "outbox" / "c7-r1.eml").is_file()


def test_outbox_reads_every_file_url_form() -> None:
    assert outbox("file:var/outbox") == Path("var/outbox")
    assert outbox("file:/srv/outbox") == Path("/srv/outbox")
    assert outbox("file:///srv/outbox") == Path("/srv/outbox")
    with pytest.raises(Rejected):
        outbox("https://api.brevo.com/v3/smtp/email")
    with pytest.raises(Rejected):
        outbox("file:")


def test_send_ids_become_safe_file_names(tmp_path: Path) -> None:
    _send(f"file:{tmp_path}", [message(1, send_id="../c7/r1")])

    assert [path.name for path in tmp_path.iterdir()] == [".._c7_r1.eml"]
