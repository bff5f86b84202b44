from __future__ import annotations

from starlette.testclient import TestClient

from tracking_app.app import app


def test_healthz_answers_ok() -> None:
    with TestClient(app) as client:  # as a context manager, the client also runs the lifespan
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_is_get_only() -> None:
    with TestClient(app) as client:
        assert client.post("/healthz").status_code == 405
