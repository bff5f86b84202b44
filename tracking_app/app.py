"""The Starlette application `app`: its routes and its lifespan.

uvicorn serves it (`make dev` runs `uvicorn tracking_app.app:app --port 8080`). Today it only
answers the health check that `make dev` polls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving requests."""
    return JSONResponse({"status": "ok"})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Opens what the routes share for the app's lifetime (nothing yet) and closes it on shutdown."""
    yield


app = Starlette(routes=[Route("/healthz", healthz, methods=["GET"])], lifespan=lifespan)
