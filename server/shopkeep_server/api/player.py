"""What a game client calls with a player token (and the reads a service may share)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, request

from ..auth import Principal
from ..runtime import services, with_connection
from ..store import catalog, offers, players
from . import schemas
from .common import (
    IDEMPOTENCY_HEADER,
    Blueprint,
    idempotent_request,
    json_response,
    json_text_response,
    outcome_label,
    outcome_response,
    principal,
    remembered,
    requires,
)

blp = Blueprint("player", __name__, url_prefix="/v1", description="Catalog, wallet and purchases")


@blp.route("/catalog", methods=["GET"])
@requires("player", "service", "studio")
@blp.response(200, schemas.LiveCatalogSchema, headers=schemas.ETAG)
@blp.alt_response(
    304,
    description="Not modified: the If-None-Match ETag is the live version",
    headers=schemas.ETAG,
)
@schemas.fails_with(blp, "not_found")
@blp.doc(parameters=[schemas.IF_NONE_MATCH, schemas.ACCEPT_LANGUAGE])
def get_catalog() -> Response:
    """The live catalog version as this reader sees it (its own prices in `price_for_you`,
    text in the locale Accept-Language picks), with an ETag over that view."""
    who = principal()
    cache = services().catalog_cache
    live = cache.known(who.game) or with_connection(
        lambda conn: catalog.live_catalog(conn, who.game, cache=cache)
    )
    # Only a player has a view of its own; a service or studio reader sees every item at its
    # list prices.
    personal = live.personal and who.role == "player"
    body, etag = offers.catalog_view(
        live,
        locale=offers.choose_locale(request.headers.get("Accept-Language"), set(live.locales)),
        view=_own_view(who, live, cache) if personal else offers.SHARED_VIEW,
    )
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    if live.locales:
        response.vary.add("Accept-Language")
    return response


def _own_view(
    who: Principal, live: catalog.LiveCatalog, cache: catalog.CatalogCache
) -> offers.PlayerView:
    view = with_connection(
        lambda conn: offers.view_for(
            conn,
            who.game,
            who.subject,
            country=who.country,
            version_id=live.version_id,
            known=cache.seen(who.game, who.subject),
        )
    )
    cache.saw(who.game, who.subject)
    return view


@blp.route("/stock", methods=["GET"])
@requires("player", "service", "studio")
@blp.arguments(schemas.StockQuerySchema, location="query")
@blp.response(200, schemas.StockSchema)
def get_stock(query: dict[str, Any]) -> dict[str, Any]:
    """Remaining units of limited items (all of them without `sku`)."""
    skus = query.get("sku") or None
    who = principal()
    # A player is not told of the stock of an item its catalog does not show it.
    player = who.subject if who.role == "player" else None
    return {
        "stock": with_connection(lambda conn: catalog.stock(conn, who.game, skus, player=player))
    }


@blp.route("/wallet", methods=["GET"])
@requires("player")
@blp.response(200, schemas.BalancesSchema)
def get_wallet() -> Response:
    """The player's balances in every currency of the catalog, zeros included."""
    who = principal()
    return json_text_response(
        with_connection(lambda conn: players.wallet_json(conn, who.game, who.subject))
    )


@blp.route("/wallet/ledger", methods=["GET"])
@requires("player")
@blp.arguments(schemas.PageQuerySchema, location="query")
@blp.response(200, schemas.LedgerPageSchema)
def get_ledger(query: dict[str, Any]) -> dict[str, Any]:
    """Every change of the player's balances, newest first."""
    who = principal()
    return with_connection(
        lambda conn: players.ledger(
            conn, who.game, who.subject, limit=query["limit"], cursor=query.get("cursor")
        )
    )


@blp.route("/inventory", methods=["GET"])
@requires("player")
@blp.response(200, schemas.InventorySchema)
def get_inventory() -> dict[str, Any]:
    """What the player owns."""
    who = principal()
    return with_connection(lambda conn: players.inventory(conn, who.game, who.subject))


@blp.route("/purchases", methods=["POST"])
@requires("player", idempotent=True)
# An instance, built once: given the class, webargs builds the schema (and its nested price
# schema) again for every request, a fifth of a purchase's CPU in Python.
@blp.arguments(remembered(schemas.PurchaseRequestSchema()))
@blp.response(201, schemas.PurchaseResultSchema)
@schemas.fails_with(
    blp,
    "not_found",
    "insufficient_funds",
    "sold_out",
    "purchase_limit_reached",
    "item_unavailable",
    "price_changed",
    "balance_cap_exceeded",
    "hold_expired",
    "debt_outstanding",
    "limit_exceeded",
    "account_frozen",
)
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def create_purchase(body: dict[str, Any]) -> Response:
    """Buys an item, exactly once per Idempotency-Key."""
    who, idem = principal(), idempotent_request()
    outcome = with_connection(
        lambda conn: players.purchase(conn, who.game, who.subject, key=idem, **body)
    )
    services().metrics.purchases.labels(outcome_label(outcome)).inc()
    return outcome_response(outcome)


@blp.route("/purchases", methods=["GET"])
@requires("player")
@blp.arguments(schemas.PageQuerySchema, location="query")
@blp.response(200, schemas.PurchasePageSchema)
def list_purchases(query: dict[str, Any]) -> dict[str, Any]:
    """The player's purchases, newest first."""
    who = principal()
    return with_connection(
        lambda conn: players.purchases(
            conn, who.game, who.subject, limit=query["limit"], cursor=query.get("cursor")
        )
    )


@blp.route("/purchases/<uuid:purchase_id>", methods=["GET"])
@requires("player", "service")
@blp.response(200, schemas.PurchaseEnvelopeSchema)
@schemas.fails_with(blp, "not_found")
def get_purchase(purchase_id: uuid.UUID) -> dict[str, Any]:
    """One purchase: a player sees only its own, a service any of its game."""
    who = principal()
    owner = who.subject if who.role == "player" else None
    return with_connection(
        lambda conn: players.get_purchase(conn, who.game, str(purchase_id), player=owner)
    )


@blp.route("/inventory/<string:sku>/consume", methods=["POST"])
@requires("player", idempotent=True)
@blp.arguments(schemas.ConsumeRequestSchema)
@blp.response(200, schemas.ConsumeResultSchema)
@schemas.fails_with(blp, "not_found", "not_enough_items", "account_frozen")
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def consume(body: dict[str, Any], sku: str) -> Response:
    """Uses up owned units of a consumable; answers with what is left."""
    who, idem = principal(), idempotent_request()
    return outcome_response(
        with_connection(
            lambda conn: players.consume(
                conn, who.game, who.subject, sku=sku, quantity=body["quantity"], key=idem
            )
        )
    )


__all__ = ["blp", "json_response"]
