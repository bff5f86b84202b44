"""`GET|HEAD /o/<token>.gif`: the open pixel, a 43-byte transparent GIF; the open is recorded."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from campaign_pipelines.store.tracking import OPEN
from campaign_pipelines.tracking.tokens import read_token
from tracking_app import convertors  # noqa: F401  (registers the `token` convertor)
from tracking_app.events import hit
from tracking_app.state import tracking_state

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
# Every open must reach us: no cache may answer for us, nor keep a contact's pixel.
NO_STORE = "no-store, no-cache, must-revalidate, private"

# Responses hold no per-request state: these are built once and sent to every request.
PIXEL = Response(GIF, media_type="image/gif", headers={"Cache-Control": NO_STORE})
NOT_FOUND = Response("Not Found", status_code=404, media_type="text/plain")


async def open_pixel(request: Request) -> Response:
    tracking = tracking_state(request)
    ids = read_token(tracking.settings.secret, request.path_params["token"])
    if ids is None:
        return NOT_FOUND
    tracking.events.record(hit(request.scope, OPEN, *ids))
    return PIXEL


routes = [Route("/o/{token:token}.gif", open_pixel, methods=["GET"])]
