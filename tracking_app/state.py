"""What the routes share for the app's lifetime: made by the lifespan, reached from a request."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import Scope

from tracking_app.database import Database
from tracking_app.events import EventWriter
from tracking_app.links import LinkTables
from tracking_app.settings import Settings


@dataclass(frozen=True)
class TrackingState:
    settings: Settings
    events: EventWriter
    links: LinkTables
    db: Database


def tracking_state(request: Request) -> TrackingState:
    return request.state.tracking


def state_of(scope: Scope) -> TrackingState:
    """The same, for bare ASGI endpoints."""
    return scope["state"]["tracking"]
