"""Responses the routes share. A Response holds no per-request state: each is built once."""

from __future__ import annotations

from starlette.responses import Response

# Every open and click must reach us: no cache may answer for us, nor keep a contact's URL.
NO_STORE = "no-store, no-cache, must-revalidate, private"

NOT_FOUND = Response("Not Found", status_code=404, media_type="text/plain")
UNAVAILABLE = Response("Service Unavailable", status_code=503, media_type="text/plain", headers={"Retry-After": "5"})
