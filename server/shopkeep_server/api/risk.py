"""Fraud and abuse controls: a player's risk state, freezes and tiers (service; freezes also
studio), and the game's mint breakers (studio). The limits themselves are enforced by the
money operations; their policy is the catalog's ``risk`` object."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from flask import Response
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from ..metrics import Metrics
from ..runtime import services, with_connection
from ..store import risk
from ..store.idempotency import run_once
from ..store.inputs import RiskReasonSchema
from ..store.rules import TRUSTED_TIER, check_player_id, reason_field
from . import schemas
from .common import IDEMPOTENCY_HEADER, idempotent_request, outcome_response, principal, requires

blp = Blueprint("risk", __name__, url_prefix="/v1", description="Fraud and abuse controls")

# --- requests ---------------------------------------------------------------------------------


class TierRequestSchema(Schema):
    tier = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": f"a tier of the live policy, `{TRUSTED_TIER}` (no tier restrictions)"
            " or null (placed by age and history again)"
        },
    )
    reason = reason_field(required=True)


# --- responses --------------------------------------------------------------------------------


def _str(**kwargs: Any) -> fields.String:
    return fields.String(required=True, **kwargs)


def _timestamp(*, metadata: dict[str, Any] | None = None, **kwargs: Any) -> fields.String:
    return fields.String(
        required=True, metadata={"format": "date-time", **(metadata or {})}, **kwargs
    )


class RiskEventSchema(Schema):
    id = fields.Integer(required=True)
    kind = _str(metadata={"description": "refused, frozen, unfrozen or tier_changed"})
    operation = _str(allow_none=True, metadata={"description": "what was refused"})
    code = _str(allow_none=True, metadata={"description": "limit_exceeded or account_frozen"})
    rule = _str(allow_none=True)
    details = fields.Dict(required=True)
    author = _str(allow_none=True)
    reason = _str(allow_none=True)
    created_at = _timestamp()


class TierSetSchema(Schema):
    tier = _str(allow_none=True)
    reason = _str()
    set_by = _str()
    set_at = _timestamp()


class FreezeSchema(Schema):
    reason = _str()
    frozen_by = _str()
    frozen_at = _timestamp()


class PlayerRiskSchema(Schema):
    player_id = _str()
    first_seen_at = _timestamp(allow_none=True, metadata={"description": "null: not seen yet"})
    tier = _str(allow_none=True, metadata={"description": "the tier the player is in now"})
    tier_until = _timestamp(
        allow_none=True, metadata={"description": "when age alone takes the player out of it"}
    )
    tier_set = fields.Nested(TierSetSchema, required=True, allow_none=True)
    frozen = fields.Boolean(required=True)
    freeze = fields.Nested(FreezeSchema, required=True, allow_none=True)
    events = fields.List(fields.Nested(RiskEventSchema), required=True)


class BreakerSchema(Schema):
    currency = _str()
    window_seconds = fields.Integer(required=True, allow_none=True)
    max_amount = fields.Integer(required=True, allow_none=True)
    tripped = fields.Boolean(required=True)
    tripped_at = _timestamp(allow_none=True)
    reset_at = _timestamp(allow_none=True)
    reset_by = _str(allow_none=True)


class BreakerLogEntrySchema(Schema):
    currency = _str()
    kind = _str(metadata={"description": "tripped or reset"})
    author = _str(allow_none=True)
    reason = _str(allow_none=True)
    details = fields.Dict(required=True)
    created_at = _timestamp()


class BreakersSchema(Schema):
    breakers = fields.List(fields.Nested(BreakerSchema), required=True)
    log = fields.List(fields.Nested(BreakerLogEntrySchema), required=True)


# --- metrics ----------------------------------------------------------------------------------


def count_refusal(metrics: Metrics, response: Response) -> None:
    """Counts a refusal of the risk controls (a first answer, not a replay): the SQL records
    it as a risk_events row in the same transaction."""
    if response.status_code not in (403, 409):
        return
    if response.headers.get("Idempotent-Replayed") == "true":
        return
    try:
        error = json.loads(response.get_data())["error"]
    except (ValueError, KeyError, TypeError):
        return
    if error.get("code") == "limit_exceeded":
        details = error.get("details") or {}
        metrics.risk_events.labels("refused", str(details.get("rule"))).inc()
        if details.get("trips"):
            metrics.risk_events.labels("breaker_tripped", "mint_breaker").inc()
    elif error.get("code") == "account_frozen":
        metrics.risk_events.labels("refused", "account_frozen").inc()


def _operation(work: Any, status: int, counted: str | None = None) -> Response:
    """A state-changing risk call, once per Idempotency-Key (as studio operations run)."""
    who, idem = principal(), idempotent_request()

    def run(conn: psycopg.Connection) -> Any:
        return run_once(conn, who.game, who.subject, idem, lambda c: (status, work(c)))

    outcome = with_connection(run)
    if counted is not None and not outcome.replayed:
        services().metrics.risk_events.labels(counted, "").inc()
    return outcome_response(outcome)


# --- routes -----------------------------------------------------------------------------------


@blp.route("/players/<string:player_id>/risk", methods=["GET"])
@requires("service")
@blp.response(200, PlayerRiskSchema)
@schemas.fails_with(blp, "validation_failed")  # a malformed player id
def get_player_risk(player_id: str) -> dict[str, Any]:
    """A player's tier, freeze and most recent risk decisions, newest first."""
    check_player_id(player_id)
    return with_connection(lambda conn: risk.player_risk(conn, principal().game, player_id))


@blp.route("/players/<string:player_id>/freeze", methods=["POST"])
@requires("service", "studio", idempotent=True)
@blp.arguments(RiskReasonSchema)
@blp.response(200, PlayerRiskSchema)
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def freeze(body: dict[str, Any], player_id: str) -> Response:
    """Freezes a player: purchases, consumes, grants, code and receipt redemptions and holds
    get 403 account_frozen; reads and refunds still work."""
    check_player_id(player_id)
    who = principal()
    return _operation(
        lambda conn: risk.freeze(
            conn, who.game, player_id, actor=who.subject, reason=body["reason"]
        ),
        200,
        "frozen",
    )


@blp.route("/players/<string:player_id>/unfreeze", methods=["POST"])
@requires("service", "studio", idempotent=True)
@blp.arguments(RiskReasonSchema)
@blp.response(200, PlayerRiskSchema)
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def unfreeze(body: dict[str, Any], player_id: str) -> Response:
    """Lifts a player's freeze."""
    check_player_id(player_id)
    who = principal()
    return _operation(
        lambda conn: risk.unfreeze(
            conn, who.game, player_id, actor=who.subject, reason=body["reason"]
        ),
        200,
        "unfrozen",
    )


@blp.route("/players/<string:player_id>/risk/tier", methods=["PUT"])
@requires("service")
@blp.arguments(TierRequestSchema)
@blp.response(200, PlayerRiskSchema)
@schemas.fails_with(blp, "validation_failed")
def set_tier(body: dict[str, Any], player_id: str) -> dict[str, Any]:
    """Raises or lowers a player's trust tier (the same body twice sets it twice: a PUT)."""
    check_player_id(player_id)
    who = principal()
    result = with_connection(
        lambda conn: risk.set_tier(
            conn,
            who.game,
            player_id,
            tier=body["tier"],
            actor=who.subject,
            reason=body["reason"],
        )
    )
    services().metrics.risk_events.labels("tier_changed", "").inc()
    return result


@blp.route("/admin/risk/breakers", methods=["GET"])
@requires("studio")
@blp.response(200, BreakersSchema)
def list_breakers() -> dict[str, Any]:
    """The live policy's mint breakers with their state, and their recent trips and resets."""
    game = principal().game
    return with_connection(
        lambda conn: {"breakers": risk.breakers(conn, game), "log": risk.breaker_log(conn, game)}
    )


@blp.route("/admin/risk/breakers/<string:currency>/reset", methods=["POST"])
@requires("studio", idempotent=True)
@blp.arguments(RiskReasonSchema)
@blp.response(200, BreakerSchema)
@schemas.fails_with(blp, "not_found")
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def reset_breaker(body: dict[str, Any], currency: str) -> Response:
    """Resets a tripped mint breaker: grants of the currency resume, counted afresh."""
    who = principal()
    return _operation(
        lambda conn: risk.reset_breaker(
            conn, who.game, currency, actor=who.subject, reason=body["reason"]
        ),
        200,
        "breaker_reset",
    )
