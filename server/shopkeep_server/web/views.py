"""The studio web page at /studio: server-rendered pages over the same store functions as the API.

Every action calls what the API's handlers call (store.catalog, store.players), through the same
idempotency machinery (``run_once`` for publish, rollback and restock; ``players.refund`` with a
``key`` for refunds), so the page cannot do what the API would refuse, and refuses it with the
API's own field paths and messages. Draft edits go through ``catalog.put_draft`` with the ETag the
page was rendered from: an edit made meanwhile by someone else is refused, never overwritten.

Each form carries the session's CSRF token, and each form that changes money or publishes carries
an Idempotency-Key made when the page was rendered, so sending it twice (a double click, a
reload) does it once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import jwt
import psycopg
from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WebResponse  # what redirect() returns too

from ..api import schemas
from ..api.common import fingerprint, services, with_connection
from ..catalog_file import diff_catalogs, format_value
from ..errors import (
    NotFound,
    PreconditionFailed,
    StoreError,
    Unauthenticated,
    ValidationFailed,
)
from ..store import catalog, players, rules
from ..store.idempotency import IdempotencyKey, Outcome, run_once
from . import sessions
from .forms import CurrencyForm, ItemForm, catalog_errors, field_errors, number

log = logging.getLogger(__name__)

blp = Blueprint(
    "studio_web",
    __name__,
    url_prefix="/studio",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

COOKIE = "shopkeep_studio"
LOGIN_COOKIE = "shopkeep_studio_login"
COOKIE_PATH = "/studio"
# Pages anyone may open; every other page needs a session, and every POST but sign-in a CSRF
# token of the session.
PUBLIC_ENDPOINTS = {"studio_web.login", "studio_web.index", "studio_web.static"}
STUDIO_ROLE = "studio"
PAGE_SIZE = 50

_publish_schema = schemas.PublishRequestSchema()
_rollback_schema = schemas.RollbackRequestSchema()
_restock_schema = schemas.RestockRequestSchema()
_refund_schema = schemas.RefundRequestSchema()


# ---------------------------------------------------------------------------------------------
# Requests: form first, then session and CSRF
# ---------------------------------------------------------------------------------------------


@blp.before_request
def _load_session() -> WebResponse | None:
    g.studio_session = None
    g.studio_session_id = request.cookies.get(COOKIE)
    if request.endpoint == "studio_web.static":
        return None  # stylesheet and script: no session lookup, no database round trip
    if g.studio_session_id:
        g.studio_session = with_connection(lambda conn: sessions.find(conn, g.studio_session_id))
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if g.studio_session is None:
        return redirect(url_for("studio_web.login"), 303)
    if request.method == "POST" and not g.studio_session.csrf_ok(request.form.get("csrf_token")):
        return _page(
            "studio/error.html",
            403,
            title="Refused",
            message="This form was not sent by the studio page (its CSRF token is missing or "
            "wrong), so nothing was changed. Reload the page and try again.",
        )
    return None


@blp.after_request
def _headers(response: WebResponse) -> WebResponse:
    # The page shows money and players: no caching, no framing, no scripts but our own file.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "studio_web.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@blp.errorhandler(Exception)
def _error_page(error: Exception) -> WebResponse:
    """Errors on the page are pages, not the API's JSON."""
    if isinstance(error, HTTPException) and (error.code or 500) < 500:
        return _page(
            "studio/error.html", error.code or 400, title=error.name, message=error.description
        )
    if isinstance(error, StoreError) and error.status < 500:
        return _page("studio/error.html", error.status, title="Refused", message=error.message)
    log.error("studio page failed on %s %s", request.method, request.path, exc_info=error)
    return _page(
        "studio/error.html",
        500,
        title="Something went wrong",
        message=f"The store could not do this (request {g.get('request_id', '-')}).",
    )


def _page(template: str, status: int = 200, **context: Any) -> WebResponse:
    session = g.get("studio_session")
    flash = None
    if session is not None and status == 200 and request.method == "GET":
        flash = with_connection(lambda conn: sessions.take_flash(conn, g.studio_session_id))
    body = render_template(template, session=session, flash=flash, **context)
    return Response(body, status=status, mimetype="text/html")


def _done(endpoint: str, text: str, *, kind: str = "ok", **values: Any) -> WebResponse:
    """Post/redirect/get: the message waits in the session row for the next page."""
    with_connection(
        lambda conn: sessions.set_flash(conn, g.studio_session_id, {"kind": kind, "text": text})
    )
    return redirect(url_for(endpoint, **values), 303)


def _session() -> sessions.Session:
    session = g.studio_session
    assert session is not None
    return session


def new_key() -> str:
    """An Idempotency-Key for a form, made when the page is rendered."""
    return f"studio-{uuid.uuid4().hex}"


def _idempotent(key: str | None, body: dict[str, Any]) -> IdempotencyKey:
    """The idempotency key of this form post, built like api.common.idempotent_request:
    scope (game, studio account), fingerprint of method, path and body."""
    config = services().config
    return IdempotencyKey(
        value=rules.check_idempotency_key(key),
        fingerprint=fingerprint(request.method, request.path, body),
        request_id=g.get("request_id", "-"),
        ttl_seconds=config.idempotency_ttl,
        wait_ms=config.idempotency_wait_ms,
    )


def _run_once(
    key: str | None,
    body: dict[str, Any],
    status: int,
    work: Callable[[psycopg.Connection], Any],
) -> Outcome:
    """Publish, rollback and restock, exactly like api/studio.py runs them."""
    who, idem = _session(), _idempotent(key, body)
    return with_connection(
        lambda conn: run_once(conn, who.game, who.subject, idem, lambda c: (status, work(c)))
    )


def _outcome_payload(outcome: Outcome) -> tuple[bool, dict[str, Any]]:
    payload = json.loads(outcome.body)
    return outcome.status < 300, payload


# ---------------------------------------------------------------------------------------------
# Money on the page
# ---------------------------------------------------------------------------------------------


def money(amount: Any, currency: str, scales: dict[str, int] | None = None) -> str:
    """``150`` USD with scale 4 as ``0.0150 USD``: exact (Decimal), never a float."""
    scale = (scales or {}).get(currency, 0)
    if not isinstance(amount, int) or isinstance(amount, bool):
        return f"{amount} {currency}"
    if scale <= 0:
        return f"{amount} {currency}"
    return f"{Decimal(amount).scaleb(-scale):.{scale}f} {currency}"


@blp.context_processor
def _helpers() -> dict[str, Any]:
    """What every studio template may call (only this blueprint's templates see them)."""
    return {"money": money, "field_value": field_value}


def field_value(value: Any, field: str) -> str:
    """A field's value in a few words (catalog_file.format_value, value first for templates)."""
    return format_value(field, value)


def _scales(*catalogs: dict[str, Any] | None) -> dict[str, int]:
    scales: dict[str, int] = {}
    for content in catalogs:
        for currency in (content or {}).get("currencies", []):
            scales.setdefault(currency["code"], currency["scale"])
    return scales


# ---------------------------------------------------------------------------------------------
# Signing in and out
# ---------------------------------------------------------------------------------------------


@blp.get("/")
def index() -> WebResponse:
    """The catalog when signed in, else the sign-in form."""
    if g.studio_session is None:
        return redirect(url_for("studio_web.login"), 303)
    return redirect(url_for("studio_web.catalog_page"), 303)


@blp.route("/login", methods=["GET", "POST"])
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
    response = _page("studio/login.html", status, login_csrf=value, error=error)
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


@blp.post("/logout")
def logout() -> WebResponse:
    """Deletes the session row: the cookie opens nothing any more, even if kept."""
    with_connection(lambda conn: sessions.delete(conn, g.studio_session_id))
    response = redirect(url_for("studio_web.login"), 303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=request.is_secure, httponly=True)
    return response


# ---------------------------------------------------------------------------------------------
# The catalog: draft and live side by side
# ---------------------------------------------------------------------------------------------


def _live(conn: psycopg.Connection, game: str) -> dict[str, Any] | None:
    live = catalog.live_version(conn, game)
    return None if live is None else catalog.get_version(conn, game, live[1])


def _catalog_state(game: str) -> dict[str, Any]:
    def read(conn: psycopg.Connection) -> dict[str, Any]:
        draft, etag = catalog.get_draft(conn, game)
        live = _live(conn, game)
        stock = {s["sku"]: s["remaining"] for s in catalog.stock(conn, game, None)}
        return {"draft": draft, "etag": etag, "live": live, "stock": stock}

    state = with_connection(read)
    live_content = state["live"] or {"currencies": [], "items": []}
    state["diff"] = diff_catalogs(live_content, state["draft"])
    state["scales"] = _scales(state["draft"], state["live"])
    return state


@blp.get("/catalog")
def catalog_page() -> WebResponse:
    """The draft and the live version side by side."""
    return _catalog_page()


def _catalog_page(
    status: int = 200,
    *,
    errors: list[str] | None = None,
    restock_errors: dict[str, list[str]] | None = None,
    conflict: bool = False,
) -> WebResponse:
    state = _catalog_state(_session().game)
    return _page(
        "studio/catalog.html",
        status,
        **state,
        errors=errors or [],
        restock_errors=restock_errors or {},
        conflict=conflict,
        new_key=new_key,
    )


def _put_draft(content: dict[str, Any], if_match: str) -> str:
    """The one way the page changes the draft: the store's put_draft, with the ETag the page
    was rendered from."""
    game = _session().game
    _, etag = with_connection(
        lambda conn: catalog.put_draft(conn, game, content, if_match=if_match or '"none"')
    )
    return etag


def _current_draft() -> tuple[dict[str, Any], str]:
    game = _session().game
    return with_connection(lambda conn: catalog.get_draft(conn, game))


CONFLICT = (
    "The draft was changed by someone else since this page was loaded, so nothing was saved. "
    "Open the catalog again to see their changes."
)


def _draft_change(content: dict[str, Any], if_match: str, done: str) -> WebResponse:
    """A change of the whole draft from the catalog page (remove, reset)."""
    try:
        _put_draft(content, if_match)
    except ValidationFailed as exc:
        return _catalog_page(422, errors=catalog_errors(exc.details, content))
    except PreconditionFailed:
        return _catalog_page(412, conflict=True)
    return _done("studio_web.catalog_page", done)


@blp.post("/items/<sku>/remove")
def remove_item(sku: str) -> WebResponse:
    """Removes an item from the draft (a bundle still holding it makes the store refuse)."""
    draft, _ = _current_draft()
    items = [item for item in draft["items"] if item["sku"] != sku]
    if len(items) == len(draft["items"]):
        return _catalog_page(404, errors=[f"{sku} is not in the draft"])
    content = {"currencies": draft["currencies"], "items": items}
    return _draft_change(content, request.form.get("etag", ""), f"Removed {sku} from the draft.")


@blp.post("/currencies/<code>/remove")
def remove_currency(code: str) -> WebResponse:
    """Removes a currency from the draft (an item still priced in it makes the store refuse)."""
    draft, _ = _current_draft()
    currencies = [c for c in draft["currencies"] if c["code"] != code]
    if len(currencies) == len(draft["currencies"]):
        return _catalog_page(404, errors=[f"{code} is not in the draft"])
    content = {"currencies": currencies, "items": draft["items"]}
    return _draft_change(content, request.form.get("etag", ""), f"Removed {code} from the draft.")


@blp.post("/draft/reset")
def reset_draft() -> WebResponse:
    """Makes the draft a copy of the live version (to start editing from what players see)."""
    game = _session().game
    live = with_connection(lambda conn: _live(conn, game))
    if live is None:
        return _catalog_page(409, errors=["Nothing is published yet: there is no live version."])
    content = {"currencies": live["currencies"], "items": live["items"]}
    return _draft_change(
        content,
        request.form.get("etag", ""),
        f"The draft is now a copy of live version {live['version']}.",
    )


# ---------------------------------------------------------------------------------------------
# Editing one item or currency of the draft
# ---------------------------------------------------------------------------------------------


@blp.route("/new-item", methods=["GET", "POST"], endpoint="new_item")
@blp.route("/items/<sku>", methods=["GET", "POST"])
def edit_item(sku: str | None = None) -> WebResponse:
    """Adds an item to the draft or edits one: every field, through put_draft."""
    draft, etag = _current_draft()
    index = next((i for i, item in enumerate(draft["items"]) if item["sku"] == sku), None)
    if sku is not None and index is None:
        return _catalog_page(404, errors=[f"{sku} is not in the draft (was it removed?)"])
    if request.method == "GET":
        form = ItemForm.from_item(draft["items"][index]) if index is not None else ItemForm()
        return _item_page(form, draft, etag, sku=sku)
    form = ItemForm.from_request(request.form)
    item, own_errors = form.to_item()
    sent_etag = request.form.get("etag", "")
    items = list(draft["items"])
    position = index if index is not None else len(items)
    if own_errors:
        errors = {k: [f"items.{position}.{k}: {m}" for m in v] for k, v in own_errors.items()}
        return _item_page(form, draft, sent_etag, sku=sku, errors=errors, status=422)
    if index is None:
        items.append(item)
    else:
        items[index] = item
    content = {"currencies": draft["currencies"], "items": items}
    try:
        _put_draft(content, sent_etag)
    except ValidationFailed as exc:
        errors = field_errors(exc.details, prefix=f"items.{position}", data=content)
        return _item_page(form, draft, sent_etag, sku=sku, errors=errors, status=422)
    except PreconditionFailed:
        return _item_page(form, draft, sent_etag, sku=sku, conflict=True, status=412)
    verb = "Added" if sku is None else "Saved"
    return _done("studio_web.catalog_page", f"{verb} {item['sku']} in the draft.")


def _item_page(
    form: ItemForm,
    draft: dict[str, Any],
    etag: str,
    *,
    sku: str | None,
    errors: dict[str, list[str]] | None = None,
    conflict: bool = False,
    status: int = 200,
) -> WebResponse:
    codes = [c["code"] for c in draft["currencies"]]
    skus = [i["sku"] for i in draft["items"] if i["kind"] != "bundle" and i["sku"] != sku]
    return _page(
        "studio/item.html",
        status,
        form=form,
        etag=etag,
        sku=sku,
        codes=codes,
        skus=skus,
        errors=errors or {},
        conflict=conflict,
        scales=_scales(draft),
    )


@blp.route("/new-currency", methods=["GET", "POST"], endpoint="new_currency")
@blp.route("/currencies/<code>", methods=["GET", "POST"])
def edit_currency(code: str | None = None) -> WebResponse:
    """Adds a currency to the draft or edits one, through put_draft."""
    draft, etag = _current_draft()
    index = next((i for i, c in enumerate(draft["currencies"]) if c["code"] == code), None)
    if code is not None and index is None:
        return _catalog_page(404, errors=[f"{code} is not in the draft (was it removed?)"])
    if request.method == "GET":
        form = (
            CurrencyForm.from_currency(draft["currencies"][index])
            if index is not None
            else CurrencyForm()
        )
        return _currency_page(form, etag, code=code)
    form = CurrencyForm.from_request(request.form)
    currency = form.to_currency()
    sent_etag = request.form.get("etag", "")
    currencies = list(draft["currencies"])
    position = index if index is not None else len(currencies)
    if index is None:
        currencies.append(currency)
    else:
        currencies[index] = currency
    content = {"currencies": currencies, "items": draft["items"]}
    try:
        _put_draft(content, sent_etag)
    except ValidationFailed as exc:
        errors = field_errors(exc.details, prefix=f"currencies.{position}", data=content)
        return _currency_page(form, sent_etag, code=code, errors=errors, status=422)
    except PreconditionFailed:
        return _currency_page(form, sent_etag, code=code, conflict=True, status=412)
    verb = "Added" if code is None else "Saved"
    return _done("studio_web.catalog_page", f"{verb} {currency['code']} in the draft.")


def _currency_page(
    form: CurrencyForm,
    etag: str,
    *,
    code: str | None,
    errors: dict[str, list[str]] | None = None,
    conflict: bool = False,
    status: int = 200,
) -> WebResponse:
    return _page(
        "studio/currency.html",
        status,
        form=form,
        etag=etag,
        code=code,
        errors=errors or {},
        conflict=conflict,
    )


# ---------------------------------------------------------------------------------------------
# Reviewing and publishing
# ---------------------------------------------------------------------------------------------


@blp.get("/diff")
def diff_page() -> WebResponse:
    """The draft compared with live, per item and field, with the publish form."""
    return _diff_page()


def _diff_page(
    status: int = 200, *, errors: list[str] | None = None, notes: str = ""
) -> WebResponse:
    state = _catalog_state(_session().game)
    return _page(
        "studio/diff.html",
        status,
        **state,
        errors=errors or [],
        notes=notes,
        key=new_key(),
    )


@blp.post("/publish")
def publish() -> WebResponse:
    """Publishes exactly the draft the person reviewed: the form's ETag must still be the
    draft's, checked in the transaction that publishes it."""
    who = _session()
    notes = request.form.get("notes", "")
    etag = request.form.get("etag", "")
    try:
        body = rules.load(_publish_schema, {"notes": notes})
    except ValidationFailed as exc:
        return _diff_page(422, errors=catalog_errors(exc.details, None), notes=notes)
    buckets = services().config.stock_buckets

    def work(conn: psycopg.Connection) -> dict[str, Any]:
        content, current = catalog.get_draft(conn, who.game)
        if current != etag:
            raise PreconditionFailed(details={"etag": current})
        return catalog.publish(
            conn,
            who.game,
            actor=who.subject,
            notes=body["notes"],
            stock_buckets=buckets,
            content=content,
        )

    try:
        outcome = _run_once(
            request.form.get("key"), {"notes": body["notes"], "etag": etag}, 201, work
        )
    except PreconditionFailed:
        return _diff_page(412, errors=[CONFLICT.replace("saved", "published")], notes=notes)
    except ValidationFailed as exc:
        return _diff_page(422, errors=catalog_errors(exc.details, None), notes=notes)
    ok, payload = _outcome_payload(outcome)
    if not ok:
        return _diff_page(outcome.status, errors=[payload["error"]["message"]], notes=notes)
    again = " (this form had already been sent)" if outcome.replayed else ""
    return _done(
        "studio_web.catalog_page", f"Published version {payload['version']}: live now{again}."
    )


@blp.get("/versions")
def versions_page() -> WebResponse:
    """Every published version, with roll back buttons."""
    game = _session().game
    found = with_connection(lambda conn: catalog.list_versions(conn, game))
    return _page("studio/versions.html", versions=found, new_key=new_key)


@blp.get("/versions/<int:version>")
def version_page(version: int) -> WebResponse:
    """What rolling back to this version would change on the live store."""
    game = _session().game

    def read(conn: psycopg.Connection) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return catalog.get_version(conn, game, version), _live(conn, game)

    chosen, live = with_connection(read)
    live_content = live or {"currencies": [], "items": []}
    return _page(
        "studio/version.html",
        version=chosen,
        live=live,
        diff=diff_catalogs(live_content, chosen),
        scales=_scales(chosen, live),
        key=new_key(),
    )


@blp.post("/rollback")
def rollback() -> WebResponse:
    """Publishes an earlier version's content as a new version (catalog.rollback, run_once)."""
    who = _session()
    try:
        body = rules.load(_rollback_schema, {"version": number(request.form.get("version", ""))})
    except ValidationFailed as exc:
        message = "; ".join(catalog_errors(exc.details, None))
        return _done("studio_web.versions_page", message, kind="error")
    buckets = services().config.stock_buckets
    try:
        outcome = _run_once(
            request.form.get("key"),
            body,
            201,
            lambda conn: catalog.rollback(
                conn,
                who.game,
                version=body["version"],
                actor=who.subject,
                stock_buckets=buckets,
            ),
        )
    except NotFound as exc:
        return _done("studio_web.versions_page", exc.message, kind="error")
    ok, payload = _outcome_payload(outcome)
    if not ok:
        return _done("studio_web.versions_page", payload["error"]["message"], kind="error")
    return _done(
        "studio_web.versions_page",
        f"Rolled back: version {payload['version']} is live with the content of version "
        f"{body['version']}. The draft is unchanged.",
    )


@blp.post("/stock/<sku>")
def restock(sku: str) -> WebResponse:
    """Adds units to a limited item (catalog.restock, run_once)."""
    who = _session()
    try:
        body = rules.load(_restock_schema, {"add": number(request.form.get("add", ""))})
    except ValidationFailed as exc:
        shown = {sku: [f"add: {m}" for m in exc.details.get("add", [])]}
        return _catalog_page(422, restock_errors=shown)
    try:
        outcome = _run_once(
            request.form.get("key"),
            body,
            200,
            lambda conn: catalog.restock(conn, who.game, sku, add=body["add"], actor=who.subject),
        )
    except NotFound as exc:  # not a published limited item: it has no restock form to show it
        return _catalog_page(404, errors=[exc.message])
    ok, payload = _outcome_payload(outcome)
    if not ok:
        return _catalog_page(outcome.status, restock_errors={sku: [payload["error"]["message"]]})
    return _done(
        "studio_web.catalog_page",
        f"Restocked {sku}: added {body['add']}, {payload['remaining']} left.",
    )


# ---------------------------------------------------------------------------------------------
# Player support
# ---------------------------------------------------------------------------------------------


@blp.get("/players")
def player_page() -> WebResponse:
    """Player lookup: balances, inventory, purchases (with refunds) and ledger."""
    player_id = request.args.get("id", "").strip()
    if not player_id:
        return _page("studio/player.html", player_id="", player=None, errors=[])
    return _player_page(player_id)


def _player_page(
    player_id: str, status: int = 200, *, refund_errors: dict[str, list[str]] | None = None
) -> WebResponse:
    game = _session().game
    try:
        rules.check_player_id(player_id)
    except ValidationFailed as exc:
        errors = catalog_errors(exc.details, None)
        return _page("studio/player.html", 422, player_id=player_id, player=None, errors=errors)
    purchases_cursor = request.args.get("purchases_cursor")
    ledger_cursor = request.args.get("ledger_cursor")

    def read(conn: psycopg.Connection) -> dict[str, Any]:
        live = _live(conn, game)
        return {
            "wallet": players.wallet(conn, game, player_id),
            "inventory": players.inventory(conn, game, player_id),
            "purchases": players.purchases(
                conn, game, player_id, limit=PAGE_SIZE, cursor=purchases_cursor
            ),
            "ledger": players.ledger(conn, game, player_id, limit=PAGE_SIZE, cursor=ledger_cursor),
            "scales": _scales(live),
        }

    try:
        player = with_connection(read)
    except ValidationFailed as exc:  # a cursor this page did not give out
        errors = catalog_errors(exc.details, None)
        return _page("studio/player.html", 422, player_id=player_id, player=None, errors=errors)
    refund_errors = refund_errors or {}
    # An error about a purchase this page does not list (an older page) is shown on top.
    listed = {p["id"] for p in player["purchases"]["purchases"]}
    errors = [m for pid, ms in refund_errors.items() if pid not in listed for m in ms]
    return _page(
        "studio/player.html",
        status,
        player_id=player_id,
        player=player,
        errors=errors,
        refund_errors=refund_errors,
        new_key=new_key,
    )


@blp.post("/players/<player_id>/refund")
def refund(player_id: str) -> WebResponse:
    """A refund through store.players.refund, the API's own money path."""
    game = _session().game
    purchase_id = request.form.get("purchase_id", "")
    reason = request.form.get("reason", "").strip()
    rules.check_player_id(player_id)
    try:
        uuid.UUID(purchase_id)
    except ValueError:
        abort(404)
    try:
        body = rules.load(_refund_schema, {"reason": reason})
    except ValidationFailed as exc:
        shown = {purchase_id: [f"{p}: {m}" for p, ms in exc.details.items() for m in ms]}
        return _player_page(player_id, 422, refund_errors=shown)
    # Only a purchase of the player shown on this page: a stale page cannot refund another's.
    with_connection(lambda conn: players.get_purchase(conn, game, purchase_id, player=player_id))
    idem = _idempotent(
        request.form.get("key"), {"purchase_id": purchase_id, "reason": body["reason"]}
    )
    outcome = with_connection(
        lambda conn: players.refund(
            conn, game, purchase_id, actor=_session().subject, reason=body["reason"], key=idem
        )
    )
    ok, payload = _outcome_payload(outcome)
    if not ok:
        return _player_page(
            player_id, outcome.status, refund_errors={purchase_id: [payload["error"]["message"]]}
        )
    purchase = payload["purchase"]
    price = purchase["price"]
    scales = with_connection(lambda conn: _scales(_live(conn, game)))
    return _done(
        "studio_web.player_page",
        f"Refunded {purchase['sku']}: {money(price['amount'], price['currency'], scales)}"
        " returned to the player.",
        id=player_id,
    )
