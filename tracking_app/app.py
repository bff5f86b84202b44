"""The Starlette application: `create_app(settings)`, its routes and its lifespan; `app` for uvicorn.

uvicorn serves `app` (`make dev` runs settings.uvicorn_command(): h11, headers bounded); its settings are
read from the environment when it starts (settings.py), so a missing TRACKING_SECRET stops it at
once. Tests call `create_app(Settings(...))`. The lifespan opens what the routes share (the event
writer, the link tables, the database connection) and, when uvicorn stops (SIGTERM), writes every
buffered event before the process exits.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from tracking_app import clicks, pixel, unsubscribe, webhooks
from tracking_app.database import Database
from tracking_app.events import EventWriter
from tracking_app.links import LinkTables
from tracking_app.settings import Settings, load_settings
from tracking_app.state import TrackingState


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving requests."""
    return JSONResponse({"status": "ok"})


# Every route of the app, the busiest first (Starlette tries them in order). Another module's
# routes (e.g. tracking_app/webhooks*.py) are mounted by adding its `routes` here.
routes: list[BaseRoute] = [
    *pixel.routes,
    *clicks.routes,
    *unsubscribe.routes,
    *webhooks.routes,
    Route("/healthz", healthz, methods=["GET"]),
]


def _log_to_stderr() -> None:
    """Under uvicorn nothing shows the app's own log lines (uvicorn configures its loggers only)."""
    logger = logging.getLogger("tracking_app")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def create_app(settings: Settings | None = None) -> Starlette:
    """The app; without `settings`, they are read from the environment at startup."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, TrackingState]]:
        current = settings or load_settings()
        _log_to_stderr()
        events = EventWriter(current)
        db = Database(current.database_url)
        events.start()
        try:
            yield {"tracking": TrackingState(current, events, LinkTables(db, current.link_cache_campaigns), db)}
        finally:
            # Requests are over when uvicorn runs this: what is buffered now is everything.
            await anyio.to_thread.run_sync(events.close)
            await db.close()

    app = Starlette(routes=list(routes), lifespan=lifespan)
    # No "add or remove a trailing slash" redirects: a tracked URL is exact or it is a 404.
    app.router.redirect_slashes = False
    return app


app = create_app()
