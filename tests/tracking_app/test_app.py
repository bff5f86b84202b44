"""The app as a whole: health check, settings from the environment, startup refused without a secret."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from campaign_pipelines.errors import ValidationError
from tracking_app.app import create_app
from tracking_app.settings import load_settings, uvicorn_command


def test_healthz_answers_ok(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_is_get_only(client: TestClient) -> None:
    assert client.post("/healthz").status_code == 405


def test_startup_fails_with_a_clear_message_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACKING_SECRET", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")

    with pytest.raises(ValidationError, match="TRACKING_SECRET is not set"), TestClient(create_app()):
        pass


def test_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://db/campaigns",
            "TRACKING_SECRET": "s3cret",
            "TRACKING_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16",
            "TRACKING_FLUSH_SIZE": "200",
            "TRACKING_FLUSH_INTERVAL": "0.25",
            "TRACKING_PREFETCH_SECONDS": "5",
        }
    )

    assert settings.secret == b"s3cret"
    assert [str(network) for network in settings.trusted_proxies] == ["10.0.0.1/32", "192.168.0.0/16"]
    assert (settings.flush_size, settings.flush_interval_s, settings.prefetch_s) == (200, 0.25, 5.0)


def test_every_settings_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        load_settings({"TRACKING_TRUSTED_PROXIES": "10.0.0.1,not-an-ip", "TRACKING_FLUSH_SIZE": "0"})

    problems = caught.value.problems
    assert len(problems) == 4, problems
    assert any("DATABASE_URL" in problem for problem in problems)
    assert any("TRACKING_SECRET" in problem for problem in problems)
    assert any("'not-an-ip'" in problem for problem in problems)
    assert any("TRACKING_FLUSH_SIZE must be at least 1" in problem for problem in problems)


def test_uvicorn_serves_the_app_with_h11_and_its_header_limit() -> None:
    command = uvicorn_command(8080, {})
    assert command[command.index("--http") + 1] == "h11"
    assert command[command.index("--h11-max-incomplete-event-size") + 1] == "16384"
    assert command[-2:] == ["--port", "8080"]
    bigger = uvicorn_command(8080, {"TRACKING_MAX_HEADER_BYTES": "65536"})
    assert bigger[bigger.index("--h11-max-incomplete-event-size") + 1] == "65536"

    with pytest.raises(ValidationError, match="TRACKING_MAX_HEADER_BYTES must be at least 4096, got 100"):
        uvicorn_command(8080, {"TRACKING_MAX_HEADER_BYTES": "100"})
