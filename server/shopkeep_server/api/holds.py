"""Holds: a player sets units of a limited item aside while paying, then buys them by naming
the hold (``hold_id`` in POST /v1/purchases). The rules are store/holds.py's and the SQL's."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask_smorest import Blueprint

from ..runtime import services, with_connection
from ..store import holds
from . import schemas
from .common import IDEMPOTENCY_HEADER, idempotent_request, outcome_response, principal, requires

blp = Blueprint(
    "holds", __name__, url_prefix="/v1", description="Holds on limited items while a player pays"
)


@blp.route("/holds", methods=["POST"])
@requires("player", idempotent=True)
@blp.arguments(schemas.HoldRequestSchema)
@blp.response(201, schemas.HoldEnvelopeSchema)
@schemas.fails_with(
    blp,
    "not_found",
    "item_unavailable",
    "sold_out",
    "purchase_limit_reached",
    "hold_limit_reached",
    "account_frozen",
)
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def place_hold(body: dict[str, Any]) -> Response:
    """Sets units of a limited item aside for the player for SHOPKEEP_HOLD_SECONDS, exactly
    once per Idempotency-Key."""
    who, idem = principal(), idempotent_request()
    seconds = services().config.hold_seconds
    return outcome_response(
        with_connection(
            lambda conn: holds.place_hold(
                conn, who.game, who.subject, seconds=seconds, key=idem, **body
            )
        )
    )


@blp.route("/holds/<uuid:hold_id>", methods=["GET"])
@requires("player")
@blp.response(200, schemas.HoldEnvelopeSchema)
@schemas.fails_with(blp, "not_found")
def get_hold(hold_id: uuid.UUID) -> dict[str, Any]:
    """One of the player's holds."""
    who = principal()
    return with_connection(lambda conn: holds.get_hold(conn, who.game, who.subject, str(hold_id)))


@blp.route("/holds/<uuid:hold_id>", methods=["DELETE"])
@requires("player")
@blp.response(200, schemas.HoldEnvelopeSchema)
@schemas.fails_with(blp, "not_found")
def release_hold(hold_id: uuid.UUID) -> dict[str, Any]:
    """Releases one of the player's holds: its units are back on sale at once. Idempotent: a
    hold that has ended is returned as it stands."""
    who = principal()
    return with_connection(
        lambda conn: holds.release_hold(conn, who.game, who.subject, str(hold_id))
    )
