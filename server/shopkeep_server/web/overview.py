"""The catalog page: the draft and the live version side by side, and the changes made from it
(remove an entry, reset the draft to live, restock a limited item).

Every change of the draft goes through the store's put_draft with the ETag the page was
rendered from: an edit made meanwhile by someone else is refused, never overwritten.
"""

from __future__ import annotations

from typing import Any

import psycopg
from flask import request
from werkzeug.wrappers import Response as WebResponse

from shopkeep.catalog_diff import diff_catalogs

from ..errors import NotFound, PreconditionFailed, ValidationFailed
from ..runtime import with_connection
from ..store import catalog, rules
from ..store.inputs import RestockRequestSchema
from . import once
from .forms import catalog_errors, number
from .page import EMPTY_CATALOG, current_session, done, live, new_key, render, scales

_restock_schema = RestockRequestSchema()


def catalog_state(game: str) -> dict[str, Any]:
    """The draft with its ETag, the live version, remaining stock, and how they differ."""

    def read(conn: psycopg.Connection) -> dict[str, Any]:
        draft, etag = catalog.get_draft(conn, game)
        stock = {s["sku"]: s["remaining"] for s in catalog.stock(conn, game, None)}
        return {"draft": draft, "etag": etag, "live": live(conn, game), "stock": stock}

    state = with_connection(read)
    state["diff"] = diff_catalogs(state["live"] or EMPTY_CATALOG, state["draft"])
    state["scales"] = scales(state["draft"], state["live"])
    return state


def current_draft() -> tuple[dict[str, Any], str]:
    game = current_session().game
    return with_connection(lambda conn: catalog.get_draft(conn, game))


def put_draft(content: dict[str, Any], if_match: str) -> str:
    """The one way the page changes the draft: the store's put_draft, with the ETag the page
    was rendered from. Returns the new ETag."""
    game = current_session().game
    _, etag = with_connection(
        lambda conn: catalog.put_draft(conn, game, content, if_match=if_match or '"none"')
    )
    return etag


def catalog_page() -> WebResponse:
    """The draft and the live version side by side."""
    return show_catalog()


def show_catalog(
    status: int = 200,
    *,
    errors: list[str] | None = None,
    restock_errors: dict[str, list[str]] | None = None,
    conflict: bool = False,
) -> WebResponse:
    state = catalog_state(current_session().game)
    return render(
        "studio/catalog.html",
        status,
        **state,
        errors=errors or [],
        restock_errors=restock_errors or {},
        conflict=conflict,
        new_key=new_key,
    )


def _draft_change(content: dict[str, Any], if_match: str, message: str) -> WebResponse:
    """A change of the whole draft from the catalog page (remove, reset)."""
    try:
        put_draft(content, if_match)
    except ValidationFailed as exc:
        return show_catalog(422, errors=catalog_errors(exc.details, content))
    except PreconditionFailed:
        return show_catalog(412, conflict=True)
    return done("studio_web.catalog_page", message)


def remove_item(sku: str) -> WebResponse:
    """Removes an item from the draft (a bundle still holding it makes the store refuse)."""
    draft, _ = current_draft()
    items = [item for item in draft["items"] if item["sku"] != sku]
    if len(items) == len(draft["items"]):
        return show_catalog(404, errors=[f"{sku} is not in the draft"])
    content = {**draft, "items": items}
    return _draft_change(content, request.form.get("etag", ""), f"Removed {sku} from the draft.")


def remove_currency(code: str) -> WebResponse:
    """Removes a currency from the draft (an item still priced in it makes the store refuse)."""
    draft, _ = current_draft()
    currencies = [c for c in draft["currencies"] if c["code"] != code]
    if len(currencies) == len(draft["currencies"]):
        return show_catalog(404, errors=[f"{code} is not in the draft"])
    content = {**draft, "currencies": currencies}
    return _draft_change(content, request.form.get("etag", ""), f"Removed {code} from the draft.")


def reset_draft() -> WebResponse:
    """Makes the draft a copy of the live version (to start editing from what players see)."""
    game = current_session().game
    found = with_connection(lambda conn: live(conn, game))
    if found is None:
        return show_catalog(409, errors=["Nothing is published yet: there is no live version."])
    content = catalog.content_of(found)
    return _draft_change(
        content,
        request.form.get("etag", ""),
        f"The draft is now a copy of live version {found['version']}.",
    )


def restock(sku: str) -> WebResponse:
    """Adds units to a limited item (catalog.restock, once per key)."""
    who = current_session()
    try:
        body = rules.load(_restock_schema, {"add": number(request.form.get("add", ""))})
    except ValidationFailed as exc:
        shown = {sku: [f"add: {m}" for m in exc.details.get("add", [])]}
        return show_catalog(422, restock_errors=shown)
    try:
        outcome = once.run_once(
            request.form.get("key"),
            body,
            200,
            lambda conn: catalog.restock(conn, who.game, sku, add=body["add"], actor=who.subject),
        )
    except NotFound as exc:  # not a published limited item: it has no restock form to show it
        return show_catalog(404, errors=[exc.message])
    ok, payload = once.outcome_payload(outcome)
    if not ok:
        return show_catalog(outcome.status, restock_errors={sku: [payload["error"]["message"]]})
    return done(
        "studio_web.catalog_page",
        f"Restocked {sku}: added {body['add']}, {payload['remaining']} left.",
    )
