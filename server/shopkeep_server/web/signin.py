"""Signing in to the page with a studio token, signing out, and the session of every request.

The session is a row (web/sessions.py) named by a cookie; every page but sign-in needs one, and
every POST but sign-in carries the session's CSRF token.
"""

from __future__ import annotations

import datetime as dt
import secrets

import jwt
from flask import g, redirect, request, url_for
from werkzeug.wrappers import Response as WebResponse

from ..errors import Unauthenticated
from ..runtime import services, with_connection
from . import sessions
from .page import STATIC_ENDPOINT, render

COOKIE = "shopkeep_studio"
LOGIN_COOKIE = "shopkeep_studio_login"
COOKIE_PATH = "/studio"
# Pages anyone may open; every other page needs a session, and every POST but sign-in a CSRF
# token of the session.
PUBLIC_ENDPOINTS = {"studio_web.login", "studio_web.index", STATIC_ENDPOINT}
STUDIO_ROLE = "studio"


def load_session() -> WebResponse | None:
    """Before every request of the page: the session of its cookie, then the CSRF check."""
    g.studio_session = None
    g.studio_session_id = request.cookies.get(COOKIE)
    if request.endpoint == STATIC_ENDPOINT:
        return None  # stylesheet and script: no session lookup, no database round trip
    if g.studio_session_id:
        g.studio_session = with_connection(lambda conn: sessions.find(conn, g.studio_session_id))
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if g.studio_session is None:
        return redirect(url_for("studio_web.login"), 303)
    if request.method == "POST" and not g.studio_session.csrf_ok(request.form.get("csrf_token")):
        return render(
            "studio/error.html",
            403,
            title="Refused",
            message="This form was not sent by the studio page (its CSRF token is missing or "
            "wrong), so nothing was changed. Reload the page and try again.",
        )
    return None


def index() -> WebResponse:
    """The catalog when signed in, else the sign-in form."""
    if g.studio_session is None:
        return redirect(url_for("studio_web.login"), 303)
    return redirect(url_for("studio_web.catalog_page"), 303)


def login() -> WebResponse:
    """Sign in with a studio token. The form carries a one-time value also set as a cookie
    (double submit), so another site cannot sign a browser in to an account of its choosing."""
    if request.method == "GET":
        return _login_form(200)
    login_value = request.cookies.get(LOGIN_COOKIE, "")
    sent = request.form.get("csrf_token", "")
    if not login_value or not secrets.compare_digest(login_value, sent):
        return _login_form(403, "The sign-in form had expired. Paste the token again.")
    token = request.form.get("token", "").strip()
    if token.lower().startswith("bearer "):
        token = token[len("bearer ") :].strip()
    if not token:
        return _login_form(400, "Paste a studio token.")
    try:
        principal = services().authenticator.authenticate("Bearer " + token)
    except Unauthenticated as exc:
        return _login_form(401, f"This token was refused: {exc.message}.")
    if principal.role != STUDIO_ROLE:
        return _login_form(
            403,
            f"This is a {principal.role} token. The studio page needs a studio token: "
            f"shopkeep-server token --game {principal.game} --role studio --sub you",
        )
    # The authenticator has just verified the signature: reading exp without it is safe.
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]  # required by auth
    token_expiry = dt.datetime.fromtimestamp(int(expires), dt.UTC)
    session_id, session = with_connection(
        lambda conn: sessions.create(
            conn,
            game=principal.game,
            subject=principal.subject,
            token_expires_at=token_expiry,
        )
    )
    response = redirect(url_for("studio_web.catalog_page"), 303)
    max_age = max(1, int((session.expires_at - dt.datetime.now(dt.UTC)).total_seconds()))
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


def _login_form(status: int, error: str | None = None) -> WebResponse:
    value = secrets.token_urlsafe(24)
    response = render("studio/login.html", status, login_csrf=value, error=error)
    response.set_cookie(
        LOGIN_COOKIE,
        value,
        max_age=3600,
        path=COOKIE_PATH,
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )
    return response


def logout() -> WebResponse:
    """Deletes the session row: the cookie opens nothing any more, even if kept."""
    with_connection(lambda conn: sessions.delete(conn, g.studio_session_id))
    response = redirect(url_for("studio_web.login"), 303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=request.is_secure, httponly=True)
    return response
