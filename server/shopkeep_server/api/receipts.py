"""Real money in: receipts a player redeems, the Steam orders they open, the stores a studio
sells on, and the App Store's notifications of refunds."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from ..errors import NotFound, ValidationFailed
from ..runtime import json_body, services, with_connection
from ..store import catalog, chargebacks, receipts, steam, store_accounts
from ..store.games import GAME_ID
from ..store.rules import (
    STORE_PRODUCT_ID_PATTERN,
    STORES,
    MoneySchema,
    WholeMatch,
)
from . import schemas
from .common import IDEMPOTENCY_HEADER, idempotent_request, outcome_response, principal, requires
from .ops import PUBLIC

blp = Blueprint("receipts", __name__, url_prefix="/v1", description="Real money in")

# What each store's proof is made of (the rest of a receipt's body).
PROOF_FIELDS: dict[str, tuple[str, ...]] = {
    "app_store": ("signed_transaction",),
    "google_play": ("product_id", "purchase_token"),
    "steam": ("order_id",),
}


class ReceiptRequestSchema(Schema):
    store = fields.String(required=True, validate=validate.OneOf(STORES))
    signed_transaction = fields.String(
        validate=validate.Length(min=1, max=20_000),
        metadata={"description": "app_store: the StoreKit 2 signed transaction (JWS)"},
    )
    product_id = fields.String(
        validate=WholeMatch(STORE_PRODUCT_ID_PATTERN),
        metadata={"description": "google_play: the product id on Google Play"},
    )
    purchase_token = fields.String(
        validate=validate.Length(min=1, max=2_000),
        metadata={"description": "google_play: the purchase token"},
    )
    order_id = fields.String(
        # A Steam order id is a positive 64-bit signed integer (this server makes them so).
        validate=[WholeMatch(r"^[0-9]{1,19}$"), lambda v: int(v) <= 2**63 - 1],
        metadata={"description": "steam: the order id POST /v1/receipts/steam/orders gave"},
    )

    hold_id = fields.UUID(
        metadata={
            "description": "the player's hold (POST /v1/holds) this payment buys: the product"
            " must grant the held item in the held quantity"
        }
    )

    @validates_schema
    def _proof_of_its_store(self, data: dict[str, Any], **_: Any) -> None:
        needed = PROOF_FIELDS[data["store"]]
        errors = {name: ["required for this store"] for name in needed if name not in data}
        others = {name for fields_ in PROOF_FIELDS.values() for name in fields_} - set(needed)
        errors.update(
            {name: [f"not part of a {data['store']} receipt"] for name in others & set(data)}
        )
        if errors:
            raise ValidationError(errors)


class ReceiptSchema(Schema):
    id = fields.String(required=True, metadata={"format": "uuid"})
    player_id = fields.String(required=True)
    store = fields.String(required=True, validate=validate.OneOf(STORES))
    transaction_id = fields.String(required=True)
    product_id = fields.String(required=True)
    store_product_id = fields.String(required=True)
    catalog_version = fields.Integer(required=True, strict=True)
    status = fields.String(required=True, validate=validate.OneOf(["credited", "charged_back"]))
    granted = fields.List(fields.Nested(schemas.GrantedSchema), required=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    charged_back_at = fields.String(
        required=True, allow_none=True, metadata={"format": "date-time"}
    )


class ReceiptResultSchema(Schema):
    receipt = fields.Nested(ReceiptSchema, required=True)
    balances = fields.List(fields.Nested(MoneySchema), required=True)
    granted = fields.List(fields.Nested(schemas.GrantedSchema), required=True)
    repaid = fields.List(
        fields.Nested(MoneySchema),
        required=True,
        metadata={"description": "debt this top-up repaid first (ledger kind chargeback)"},
    )
    debts = fields.List(
        fields.Nested(MoneySchema), required=True, metadata={"description": "what is still owed"}
    )


@blp.route("/receipts", methods=["POST"])
@requires("player", idempotent=True)
@blp.arguments(ReceiptRequestSchema())
@blp.response(201, ReceiptResultSchema)
@schemas.fails_with(
    blp,
    "not_found",
    "receipt_invalid",
    "receipt_already_used",
    "hold_expired",
    "purchase_limit_reached",
    "balance_cap_exceeded",
    "store_unavailable",
    "account_frozen",
)
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def redeem_receipt(body: dict[str, Any]) -> Response:
    """Credits what an app-store purchase grants, exactly once per store transaction."""
    who, idem = principal(), idempotent_request()
    return outcome_response(
        receipts.redeem(with_connection, services().config, who.game, who.subject, body, key=idem)
    )


class SteamOrderRequestSchema(Schema):
    product_id = fields.String(required=True, metadata={"description": "the catalog's product"})
    steam_id = fields.String(required=True, validate=WholeMatch(r"^[0-9]{1,20}$"))
    language = fields.String(load_default="en", validate=WholeMatch(r"^[a-z]{2}(-[A-Za-z]{2})?$"))


class SteamOrderSchema(Schema):
    order_id = fields.String(required=True)
    trans_id = fields.String(required=True)


@blp.route("/receipts/steam/orders", methods=["POST"])
@requires("player")
@blp.arguments(SteamOrderRequestSchema())
@blp.response(201, SteamOrderSchema)
@schemas.fails_with(blp, "not_found", "receipt_invalid", "store_unavailable")
def open_steam_order(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Opens a Steam order (InitTxn) for one of the catalog's products; the player approves
    it in the Steam overlay, then the game redeems it with POST /v1/receipts."""
    who, config = principal(), services().config
    account = with_connection(lambda conn: store_accounts.load_account(conn, who.game, "steam"))
    live = with_connection(
        lambda conn: catalog.live_catalog(conn, who.game, cache=services().catalog_cache)
    )
    product = next((p for p in live.content["products"] if p["id"] == body["product_id"]), None)
    if product is None or "steam" not in product["store_ids"]:
        raise NotFound(f"no product {body['product_id']} is sold on Steam")
    price = account.settings.get("prices", {}).get(product["id"])
    if price is None:
        raise ValidationFailed(
            details={"product_id": ["the game's Steam settings give this product no price"]}
        )
    order = steam.open_order(
        account,
        config,
        with_connection,
        game=who.game,
        player=who.subject,
        steam_id=body["steam_id"],
        item_id=product["store_ids"]["steam"],
        price=price,
        description=product["id"],
        language=body["language"],
    )
    return order, 201


# --- the studio's store settings ----------------------------------------------------------------


class StoreAccountSchema(Schema):
    store = fields.String(required=True, validate=validate.OneOf(STORES))
    settings = fields.Dict(required=True, metadata={"description": "every setting but secrets"})
    secrets_set = fields.List(
        fields.String(), required=True, metadata={"description": "names of the secrets stored"}
    )
    chargeback_policy = fields.String(required=True, validate=validate.OneOf(["debt", "freeze"]))
    updated_by = fields.String(required=True)
    updated_at = fields.String(required=True, metadata={"format": "date-time"})


class StoreAccountListSchema(Schema):
    stores = fields.List(fields.Nested(StoreAccountSchema), required=True)


STORE_BODY = {
    "required": True,
    "description": "The store's settings (docs/stores.md); secrets left out are kept.",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


@blp.route("/admin/stores", methods=["GET"])
@requires("studio")
@blp.response(200, StoreAccountListSchema)
def list_stores() -> dict[str, Any]:
    """The stores this game sells on, without their secrets."""
    game = principal().game
    return {"stores": with_connection(lambda conn: store_accounts.list_accounts(conn, game))}


@blp.route("/admin/stores/<string:store>", methods=["PUT"])
@requires("studio")
@blp.response(200, StoreAccountSchema)
@schemas.fails_with(blp, "not_found")
@blp.doc(requestBody=STORE_BODY)
def put_store(store: str) -> dict[str, Any]:
    """Sets how this game sells on one store; answers without the secrets."""
    who, raw = principal(), json_body()
    found: dict[str, Any] = with_connection(
        lambda conn: store_accounts.put_account(conn, who.game, store, raw, actor=who.subject)
    )
    return found


# --- what the stores send -----------------------------------------------------------------------


class AppStoreNotificationSchema(Schema):
    signedPayload = fields.String(required=True, validate=validate.Length(min=1, max=100_000))


class NotificationResultSchema(Schema):
    notification_type = fields.String(required=True)
    transaction_id = fields.String(required=True, allow_none=True)
    taken_back = fields.Boolean(required=True)


@blp.route("/stores/app_store/notifications/<string:game_id>", methods=["POST"])
@blp.arguments(AppStoreNotificationSchema())
@blp.response(200, NotificationResultSchema)
@schemas.fails_with(blp, "not_found", "receipt_invalid")
@blp.doc(**PUBLIC)
def app_store_notification(body: dict[str, Any], game_id: str) -> dict[str, Any]:
    """App Store Server Notifications v2 (set this URL in App Store Connect): no token, the
    notification's own signature is checked; REFUND and REVOKE take the purchase back."""
    if GAME_ID.fullmatch(game_id) is None:
        raise NotFound("no such game")
    return chargebacks.app_store_notification(with_connection, game_id, body["signedPayload"])


class PubSubMessageSchema(Schema):
    # Pub/Sub may add fields to its envelope: they are ignored, not refused (a refusal would be
    # redelivered for days).
    class Meta:
        unknown = EXCLUDE

    data = fields.String(required=True, validate=validate.Length(min=1, max=100_000))
    messageId = fields.String()
    message_id = fields.String()
    publishTime = fields.String()
    publish_time = fields.String()
    attributes = fields.Dict()
    orderingKey = fields.String()


class PubSubPushSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    message = fields.Nested(PubSubMessageSchema, required=True)
    subscription = fields.String()
    deliveryAttempt = fields.Integer()


@blp.route("/stores/google_play/notifications/<string:game_id>", methods=["POST"])
@blp.arguments(PubSubPushSchema())
@blp.response(200, NotificationResultSchema)
@schemas.fails_with(blp, "unauthenticated", "not_found", "receipt_invalid")
@blp.doc(**PUBLIC)
def google_play_notification(body: dict[str, Any], game_id: str) -> dict[str, Any]:
    """Google Play real-time developer notifications, pushed by a Cloud Pub/Sub subscription
    with authentication (its OIDC token in Authorization: Bearer, checked against the game's
    pubsub_audience and pubsub_service_account); a voided purchase is taken back."""
    if GAME_ID.fullmatch(game_id) is None:
        raise NotFound("no such game")
    return chargebacks.google_play_notification(
        with_connection,
        services().config,
        game_id,
        request.headers.get("Authorization"),
        body,
    )
