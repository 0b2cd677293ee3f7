"""Personalized offers (issue 15): promo code redemption (player) and player attributes
(service). The player's own prices are in GET /v1/catalog (api/player.py)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from ..runtime import with_connection
from ..store import offers
from ..store.rules import check_player_id
from . import schemas
from .common import IDEMPOTENCY_HEADER, idempotent_request, outcome_response, principal, requires

blp = Blueprint(
    "offers", __name__, url_prefix="/v1", description="Promo codes and player attributes"
)


@blp.route("/promo-codes/redeem", methods=["POST"])
@requires("player", idempotent=True)
@blp.arguments(schemas.RedeemRequestSchema)
@blp.response(200, schemas.RedeemResultSchema)
@schemas.fails_with(
    blp,
    "not_found",
    "code_exhausted",
    "code_already_redeemed",
    "balance_cap_exceeded",
    "account_frozen",
)
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def redeem_code(body: dict[str, Any]) -> Response:
    """Redeems a promo code: unlocks its offer or grants its contents, once per player.
    An unknown code, one outside its window and one for another segment all answer 404."""
    who, idem = principal(), idempotent_request()
    return outcome_response(
        with_connection(
            lambda conn: offers.redeem(conn, who.game, who.subject, code=body["code"], key=idem)
        )
    )


@blp.route("/players/<string:player_id>/attributes", methods=["GET"])
@requires("service", "studio")
@blp.response(200, schemas.PlayerAttributesResultSchema)
@schemas.fails_with(blp, "validation_failed")  # a malformed player id
def get_attributes(player_id: str) -> dict[str, Any]:
    """What segment rules can use about a player: first seen, country, last purchase,
    lifetime spend per currency and the studio's key-values."""
    check_player_id(player_id)
    who = principal()
    return with_connection(lambda conn: offers.get_attributes(conn, who.game, player_id))


@blp.route("/players/<string:player_id>/attributes", methods=["PUT"])
@requires("service")
@blp.arguments(schemas.PlayerAttributesRequestSchema)
@blp.response(200, schemas.PlayerAttributesResultSchema)
def put_attributes(body: dict[str, Any], player_id: str) -> dict[str, Any]:
    """Replaces a player's studio-defined key-values (and sets its country when given)."""
    check_player_id(player_id)
    who = principal()

    def work(conn: Any) -> dict[str, Any]:
        with conn.transaction():
            return offers.put_attributes(conn, who.game, player_id, body)

    return with_connection(work)
