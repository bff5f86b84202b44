"""`GET|HEAD /c/<token>/<n>`: a tracked link; 302 to link n of the campaign's stored link table.

Only a URL of the token's campaign can be a target, so the app is never an open redirect: an
unknown n, a forged token or anything that is not a number is a 404 and records nothing.
"""

from __future__ import annotations

import logging

import psycopg
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from campaign_pipelines.store.tracking import CLICK
from campaign_pipelines.tracking.tokens import read_token
from tracking_app import convertors  # noqa: F401  (registers the `token` convertor)
from tracking_app.events import hit
from tracking_app.responses import NOT_FOUND, UNAVAILABLE
from tracking_app.state import state_of

logger = logging.getLogger(__name__)


class Click:
    """The endpoint, as a bare ASGI app (builds no Request): clicks come right after opens in volume."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracking = state_of(scope)
        params = scope["path_params"]
        ids = read_token(tracking.settings.secret, params["token"])
        if ids is None:
            await NOT_FOUND(scope, receive, send)
            return
        campaign_id, contact_id = ids
        number: int = params["n"]
        try:
            redirect = await tracking.links.redirect(campaign_id, number)
        except psycopg.OperationalError as error:
            logger.warning(
                "click of contact %s in campaign %s: cannot read the link table (%s)", contact_id, campaign_id, error
            )
            await UNAVAILABLE(scope, receive, send)
            return
        if redirect is None:
            await NOT_FOUND(scope, receive, send)
            return
        tracking.events.record(hit(scope, CLICK, campaign_id, contact_id, number))
        await redirect(scope, receive, send)


routes = [Route("/c/{token:token}/{n:link}", Click(), methods=["GET"])]
