"""`GET|HEAD /c/<token>/<n>`: a tracked link; 302 to link n of the campaign's stored link table.

Only a URL of the token's campaign can be a target, so the app is never an open redirect: an
unknown n, a forged token or anything that is not a number is a 404 and records nothing.
"""

from __future__ import annotations

import logging

import psycopg
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from campaign_pipelines.store.tracking import CLICK
from campaign_pipelines.tracking.tokens import read_token
from tracking_app import convertors  # noqa: F401  (registers the `token` convertor)
from tracking_app.events import hit
from tracking_app.pixel import NO_STORE, NOT_FOUND
from tracking_app.state import tracking_state

logger = logging.getLogger(__name__)

UNAVAILABLE = Response("Service Unavailable", status_code=503, media_type="text/plain", headers={"Retry-After": "5"})


async def click(request: Request) -> Response:
    tracking = tracking_state(request)
    ids = read_token(tracking.settings.secret, request.path_params["token"])
    if ids is None:
        return NOT_FOUND
    campaign_id, contact_id = ids
    number: int = request.path_params["n"]
    try:
        url = await tracking.links.url(campaign_id, number)
    except psycopg.OperationalError as error:
        logger.warning(
            "click of contact %s in campaign %s: cannot read the link table (%s)", contact_id, campaign_id, error
        )
        return UNAVAILABLE
    if url is None:
        return NOT_FOUND
    tracking.events.record(hit(request.scope, CLICK, campaign_id, contact_id, number))
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": NO_STORE})


routes = [Route("/c/{token:token}/{n:link}", click, methods=["GET"])]
