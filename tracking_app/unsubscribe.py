"""`/u/<token>`: one-click unsubscribe (RFC 8058) and its confirmation page.

`GET` only shows a page with a confirm button: mail scanners follow every GET link, so a GET never
unsubscribes. `POST` (the mail client's `List-Unsubscribe=One-Click`, or the page's button, which
posts the same field) blacklists the contact's email for every future campaign at once, with no
login: the signed token is the proof. Written synchronously, it holds before the answer goes out.
"""

from __future__ import annotations

import logging

import psycopg
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from campaign_pipelines.store import tracking as tracking_sql
from campaign_pipelines.tracking.tokens import read_token
from tracking_app import convertors  # noqa: F401  (registers the `token` convertor)
from tracking_app.events import hit, origin
from tracking_app.responses import NOT_FOUND
from tracking_app.state import tracking_state

logger = logging.getLogger(__name__)

LANGUAGES = ("fr", "en")
# The campaigns' own language, when the browser prefers neither.
DEFAULT_LANGUAGE = "fr"

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}
button{{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}}</style>
</head><body><h1>{title}</h1><p>{text}</p>{form}</body></html>
"""
# Posts the RFC 8058 field to this same URL: the page's button and a mail client do the same thing.
_FORM = (
    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">{button}</button></form>'
)
_TEXTS = {
    "fr": {
        "ask_title": "Se désinscrire",
        "ask_text": "Vous ne recevrez plus aucun de nos emails à cette adresse.",
        "button": "Confirmer la désinscription",
        "done_title": "Désinscription confirmée",
        "done_text": "Votre adresse a été retirée de nos envois. Vous ne recevrez plus nos emails.",
        "failed_title": "Désinscription impossible pour le moment",
        "failed_text": "Une erreur temporaire nous empêche de traiter votre demande. Réessayez dans quelques minutes.",
    },
    "en": {
        "ask_title": "Unsubscribe",
        "ask_text": "You will no longer receive any of our emails at this address.",
        "button": "Confirm unsubscribe",
        "done_title": "You are unsubscribed",
        "done_text": "Your address has been removed from our mailings. You will not receive our emails anymore.",
        "failed_title": "Unsubscribe is not possible right now",
        "failed_text": "A temporary error prevents us from handling your request. Please try again in a few minutes.",
    },
}
_HEADERS = {
    "Cache-Control": "no-store",
    "Vary": "Accept-Language",
    "X-Robots-Tag": "noindex",
    # The URL carries the token: it must not leak to other sites.
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def language(accept_language: str | None) -> str:
    """fr or en, whichever the Accept-Language header ranks higher (quality values honoured)."""
    best, best_quality = DEFAULT_LANGUAGE, 0.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().split("-")[0].lower()
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > best_quality:  # equal qualities: the first listed wins
            best, best_quality = primary, quality
    return best


def _page(lang: str, step: str, *, form: bool = False, status_code: int = 200) -> HTMLResponse:
    texts = _TEXTS[lang]
    body = _PAGE.format(
        lang=lang,
        title=texts[f"{step}_title"],
        text=texts[f"{step}_text"],
        form=_FORM.format(button=texts["button"]) if form else "",
    )
    return HTMLResponse(body, status_code=status_code, headers={**_HEADERS, "Content-Language": lang})


async def show(request: Request) -> Response:
    """The confirmation page; unsubscribes nobody."""
    if read_token(tracking_state(request).settings.secret, request.path_params["token"]) is None:
        return NOT_FOUND
    return _page(language(request.headers.get("accept-language")), "ask", form=True)


async def unsubscribe(request: Request) -> Response:
    tracking = tracking_state(request)
    ids = read_token(tracking.settings.secret, request.path_params["token"])
    if ids is None:
        return NOT_FOUND
    campaign_id, contact_id = ids
    lang = language(request.headers.get("accept-language"))
    ip, user_agent, flag = origin(hit(request.scope, tracking_sql.UNSUBSCRIBE, *ids), tracking.settings.trusted_proxies)
    try:
        async with tracking.db.connection() as conn:
            found = await tracking_sql.unsubscribe(
                conn,
                campaign_id,
                contact_id,
                flag=flag,
                ip=ip,
                user_agent=user_agent,
            )
    except psycopg.errors.UndefinedTable:
        found = False  # the campaign's contacts were deleted
    except psycopg.OperationalError as error:
        logger.error(
            "unsubscribe of contact %s in campaign %s failed, the database is unreachable (%s)",
            contact_id,
            campaign_id,
            error,
        )
        return _page(lang, "failed", status_code=503)
    if not found:
        return NOT_FOUND
    logger.info("contact %s of campaign %s unsubscribed (blacklisted for every campaign)", contact_id, campaign_id)
    return _page(lang, "done")


routes = [
    Route("/u/{token:token}", show, methods=["GET"]),
    Route("/u/{token:token}", unsubscribe, methods=["POST"]),
]
