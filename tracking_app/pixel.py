"""`GET|HEAD /o/<token>.gif`: the open pixel, a 43-byte transparent GIF; the open is recorded."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from campaign_pipelines.store.tracking import OPEN
from campaign_pipelines.tracking.tokens import read_token
from tracking_app import convertors  # noqa: F401  (registers the `token` convertor)
from tracking_app.events import hit
from tracking_app.responses import NO_STORE, NOT_FOUND
from tracking_app.state import state_of

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
PIXEL = Response(GIF, media_type="image/gif", headers={"Cache-Control": NO_STORE})


class OpenPixel:
    """The endpoint, as a bare ASGI app: the busiest route of the app builds no Request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracking = state_of(scope)
        ids = read_token(tracking.settings.secret, scope["path_params"]["token"])
        if ids is None:
            await NOT_FOUND(scope, receive, send)
            return
        tracking.events.record(hit(scope, OPEN, *ids))
        await PIXEL(scope, receive, send)


routes = [Route("/o/{token:token}.gif", OpenPixel(), methods=["GET"])]
