"""What a studio's game backend calls with a service token: grants, refunds, player reads."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask_smorest import Blueprint

from ..runtime import services, with_connection
from ..store import events, players
from ..store.rules import check_player_id
from . import schemas
from .common import (
    IDEMPOTENCY_HEADER,
    idempotent_request,
    json_text_response,
    outcome_response,
    principal,
    requires,
)

blp = Blueprint("service", __name__, url_prefix="/v1", description="Studio backend operations")


@blp.route("/players/<string:player_id>/grants", methods=["POST"])
@requires("service", idempotent=True)
@blp.arguments(schemas.GrantRequestSchema)
@blp.response(201, schemas.GrantResultSchema)
@schemas.fails_with(
    blp,
    "not_found",
    "balance_cap_exceeded",
    "purchase_limit_reached",
    "limit_exceeded",
    "account_frozen",
)
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def create_grant(body: dict[str, Any], player_id: str) -> Response:
    """Gives a player currency or an item, exactly once per Idempotency-Key."""
    check_player_id(player_id)
    who, idem = principal(), idempotent_request()
    return outcome_response(
        with_connection(
            lambda conn: players.grant(
                conn, who.game, player_id, actor=who.subject, key=idem, **body
            )
        )
    )


@blp.route("/purchases/<uuid:purchase_id>/refund", methods=["POST"])
@requires("service", idempotent=True)
@blp.arguments(schemas.RefundRequestSchema)
@blp.response(200, schemas.PurchaseEnvelopeSchema)
@schemas.fails_with(
    blp,
    "not_found",
    "not_enough_items",
    "insufficient_funds",
    "balance_cap_exceeded",
    "limit_exceeded",
)
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def refund(body: dict[str, Any], purchase_id: uuid.UUID) -> Response:
    """Returns the price and takes back what the purchase granted."""
    who, idem = principal(), idempotent_request()
    return outcome_response(
        with_connection(
            lambda conn: players.refund(
                conn, who.game, str(purchase_id), actor=who.subject, reason=body["reason"], key=idem
            )
        )
    )


@blp.route("/players/<string:player_id>/wallet", methods=["GET"])
@requires("service")
@blp.response(200, schemas.BalancesSchema)
@schemas.fails_with(blp, "validation_failed")  # a malformed player id
def player_wallet(player_id: str) -> Response:
    """A player's balances."""
    check_player_id(player_id)
    return json_text_response(
        with_connection(lambda conn: players.wallet_json(conn, principal().game, player_id))
    )


@blp.route("/players/<string:player_id>/inventory", methods=["GET"])
@requires("service")
@blp.response(200, schemas.InventorySchema)
@schemas.fails_with(blp, "validation_failed")  # a malformed player id
def player_inventory(player_id: str) -> dict[str, Any]:
    """What a player owns."""
    check_player_id(player_id)
    return with_connection(lambda conn: players.inventory(conn, principal().game, player_id))


@blp.route("/players/<string:player_id>/ledger", methods=["GET"])
@requires("service")
@blp.arguments(schemas.PageQuerySchema, location="query")
@blp.response(200, schemas.LedgerPageSchema)
def player_ledger(query: dict[str, Any], player_id: str) -> dict[str, Any]:
    """A player's ledger, newest first."""
    check_player_id(player_id)
    return with_connection(
        lambda conn: players.ledger(
            conn, principal().game, player_id, limit=query["limit"], cursor=query.get("cursor")
        )
    )


@blp.route("/players/<string:player_id>/purchases", methods=["GET"])
@requires("service")
@blp.arguments(schemas.PageQuerySchema, location="query")
@blp.response(200, schemas.PurchasePageSchema)
def player_purchases(query: dict[str, Any], player_id: str) -> dict[str, Any]:
    """A player's purchases, newest first."""
    check_player_id(player_id)
    return with_connection(
        lambda conn: players.purchases(
            conn, principal().game, player_id, limit=query["limit"], cursor=query.get("cursor")
        )
    )


@blp.route("/events", methods=["GET"])
@requires("service")
@blp.arguments(schemas.EventsQuerySchema, location="query")
@blp.response(200, schemas.EventPageSchema)
def list_events(query: dict[str, Any]) -> dict[str, Any]:
    """The game's events after a cursor, oldest first (see docs/api.md, Events)."""
    return with_connection(
        lambda conn: events.feed(
            conn,
            principal().game,
            after=query.get("after"),
            types=query.get("types"),
            limit=query["limit"],
            on_positioned=services().metrics.count_events,
        )
    )
