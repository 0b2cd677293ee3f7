"""What every studio page shares: the signed-in session of the request, rendering (with the
flash message of the last action), post/redirect/get, money and values as the page shows them,
and the page's error pages and security headers."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

import psycopg
from flask import Response, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WebResponse  # what redirect() returns too

from shopkeep.catalog_diff import format_value

from ..errors import StoreError
from ..runtime import with_connection
from ..store import catalog
from . import sessions

log = logging.getLogger(__name__)

STATIC_ENDPOINT = "studio_web.static"
EMPTY_CATALOG: dict[str, Any] = {"currencies": [], "items": []}


def current_session() -> sessions.Session:
    """The session of this request (every page but sign-in has one: see signin.load_session)."""
    session = g.studio_session
    assert session is not None
    return session


def render(template: str, status: int = 200, **context: Any) -> WebResponse:
    session = g.get("studio_session")
    flash = None
    if session is not None and status == 200 and request.method == "GET":
        flash = with_connection(lambda conn: sessions.take_flash(conn, g.studio_session_id))
    body = render_template(template, session=session, flash=flash, **context)
    return Response(body, status=status, mimetype="text/html")


def done(endpoint: str, text: str, *, kind: str = "ok", **values: Any) -> WebResponse:
    """Post/redirect/get: the message waits in the session row for the next page."""
    with_connection(
        lambda conn: sessions.set_flash(conn, g.studio_session_id, {"kind": kind, "text": text})
    )
    return redirect(url_for(endpoint, **values), 303)


def new_key() -> str:
    """An Idempotency-Key for a form, made when the page is rendered."""
    return f"studio-{uuid.uuid4().hex}"


def live(conn: psycopg.Connection, game: str) -> dict[str, Any] | None:
    """The live version with its content, or None when nothing is published."""
    found = catalog.live_version(conn, game)
    return None if found is None else catalog.get_version(conn, game, found[1])


# ---------------------------------------------------------------------------------------------
# Money and values on the page
# ---------------------------------------------------------------------------------------------


def money(amount: Any, currency: str, scales: dict[str, int] | None = None) -> str:
    """``150`` USD with scale 4 as ``0.0150 USD``: exact (Decimal), never a float."""
    scale = (scales or {}).get(currency, 0)
    if not isinstance(amount, int) or isinstance(amount, bool):
        return f"{amount} {currency}"
    if scale <= 0:
        return f"{amount} {currency}"
    return f"{Decimal(amount).scaleb(-scale):.{scale}f} {currency}"


def field_value(value: Any, field: str) -> str:
    """A field's value in a few words (catalog_diff.format_value, value first for templates)."""
    return format_value(field, value)


def scales(*catalogs: dict[str, Any] | None) -> dict[str, int]:
    """Each currency's scale, from the first of ``catalogs`` that has it."""
    found: dict[str, int] = {}
    for content in catalogs:
        for currency in (content or {}).get("currencies", []):
            found.setdefault(currency["code"], currency["scale"])
    return found


def template_helpers() -> dict[str, Any]:
    """What every studio template may call (only this blueprint's templates see them)."""
    return {"money": money, "field_value": field_value}


# ---------------------------------------------------------------------------------------------
# Every response of the page
# ---------------------------------------------------------------------------------------------


def security_headers(response: WebResponse) -> WebResponse:
    # The page shows money and players: no caching, no framing, no scripts but our own file.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != STATIC_ENDPOINT:
        response.headers["Cache-Control"] = "no-store"
    return response


def error_page(error: Exception) -> WebResponse:
    """Errors on the page are pages, not the API's JSON."""
    if isinstance(error, HTTPException) and (error.code or 500) < 500:
        return render(
            "studio/error.html", error.code or 400, title=error.name, message=error.description
        )
    if isinstance(error, StoreError) and error.status < 500:
        return render("studio/error.html", error.status, title="Refused", message=error.message)
    log.error("studio page failed on %s %s", request.method, request.path, exc_info=error)
    return render(
        "studio/error.html",
        500,
        title="Something went wrong",
        message=f"The store could not do this (request {g.get('request_id', '-')}).",
    )
