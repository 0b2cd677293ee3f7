"""Player support: a player's balances, inventory, purchases and ledger, and refunds through
the store's own money path (store.players.refund, once per key)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from flask import abort, request
from werkzeug.wrappers import Response as WebResponse

from ..errors import ValidationFailed
from ..runtime import with_connection
from ..store import offers, players, rules
from ..store.inputs import RefundRequestSchema
from . import once
from .forms import catalog_errors
from .page import current_session, done, live, money, new_key, render, scales

PAGE_SIZE = 50

_refund_schema = RefundRequestSchema()


def player_page() -> WebResponse:
    """Player lookup: balances, inventory, purchases (with refunds) and ledger."""
    player_id = request.args.get("id", "").strip()
    if not player_id:
        return render("studio/player.html", player_id="", player=None, errors=[])
    return _show_player(player_id)


def _show_player(
    player_id: str, status: int = 200, *, refund_errors: dict[str, list[str]] | None = None
) -> WebResponse:
    game = current_session().game
    try:
        rules.check_player_id(player_id)
    except ValidationFailed as exc:
        errors = catalog_errors(exc.details, None)
        return render("studio/player.html", 422, player_id=player_id, player=None, errors=errors)
    purchases_cursor = request.args.get("purchases_cursor")
    ledger_cursor = request.args.get("ledger_cursor")

    def read(conn: psycopg.Connection) -> dict[str, Any]:
        return {
            "wallet": players.wallet(conn, game, player_id),
            "inventory": players.inventory(conn, game, player_id),
            "purchases": players.purchases(
                conn, game, player_id, limit=PAGE_SIZE, cursor=purchases_cursor
            ),
            "ledger": players.ledger(conn, game, player_id, limit=PAGE_SIZE, cursor=ledger_cursor),
            "scales": scales(live(conn, game)),
            "profile": offers.get_attributes(conn, game, player_id),
        }

    try:
        player = with_connection(read)
    except ValidationFailed as exc:  # a cursor this page did not give out
        errors = catalog_errors(exc.details, None)
        return render("studio/player.html", 422, player_id=player_id, player=None, errors=errors)
    refund_errors = refund_errors or {}
    # An error about a purchase this page does not list (an older page) is shown on top.
    listed = {p["id"] for p in player["purchases"]["purchases"]}
    errors = [m for pid, ms in refund_errors.items() if pid not in listed for m in ms]
    return render(
        "studio/player.html",
        status,
        player_id=player_id,
        player=player,
        errors=errors,
        refund_errors=refund_errors,
        new_key=new_key,
    )


def refund(player_id: str) -> WebResponse:
    """A refund through store.players.refund, the API's own money path."""
    game = current_session().game
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
        return _show_player(player_id, 422, refund_errors=shown)
    # Only a purchase of the player shown on this page: a stale page cannot refund another's.
    with_connection(lambda conn: players.get_purchase(conn, game, purchase_id, player=player_id))
    idem = once.form_request(
        request.form.get("key"), {"purchase_id": purchase_id, "reason": body["reason"]}
    )
    outcome = with_connection(
        lambda conn: players.refund(
            conn,
            game,
            purchase_id,
            actor=current_session().subject,
            reason=body["reason"],
            key=idem,
        )
    )
    ok, payload = once.outcome_payload(outcome)
    if not ok:
        return _show_player(
            player_id, outcome.status, refund_errors={purchase_id: [payload["error"]["message"]]}
        )
    purchase = payload["purchase"]
    price = purchase["price"]
    shown_scales = with_connection(lambda conn: scales(live(conn, game)))
    return done(
        "studio_web.player_page",
        f"Refunded {purchase['sku']}: {money(price['amount'], price['currency'], shown_scales)}"
        " returned to the player.",
        id=player_id,
    )
