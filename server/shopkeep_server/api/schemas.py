"""Request and response schemas of the HTTP API; the OpenAPI document is generated from them."""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, missing, validate, validates_schema

from ..errors import ERROR_TABLE
from ..store import events

# The bodies of the operations the studio page runs too: their home is store/inputs.py.
from ..store.inputs import PublishRequestSchema as PublishRequestSchema
from ..store.inputs import RefundRequestSchema as RefundRequestSchema
from ..store.inputs import RestockRequestSchema as RestockRequestSchema
from ..store.inputs import RollbackRequestSchema as RollbackRequestSchema
from ..store.rules import (
    CurrencySchema,
    ItemSchema,
    MintBreakerSchema,
    MoneySchema,
    OfferSchema,
    PlayerAttributesSchema,
    ProductGrantsSchema,
    ProductSchema,
    PromoCodeSchema,
    RefundLimitSchema,
    RiskSchema,
    SegmentSchema,
    StrictInteger,
    TierSchema,
    WindowLimitSchema,
    amount_field,
    currency_field,
    quantity_field,
    reason_field,
    sku_field,
)

# --- requests ---------------------------------------------------------------------------------


class PurchaseRequestSchema(Schema):
    sku = sku_field(required=True)
    quantity = quantity_field(load_default=1)
    currency = currency_field(metadata={"description": "needed when the item has several prices"})
    expected_price = fields.Nested(
        MoneySchema, metadata={"description": "the unit price the player saw"}
    )
    hold_id = fields.UUID(
        metadata={"description": "the player's hold (POST /v1/holds) whose units this buys"}
    )


class ConsumeRequestSchema(Schema):
    quantity = quantity_field(required=True)


class GrantRequestSchema(Schema):
    currency = currency_field()
    amount = amount_field()
    sku = sku_field()
    quantity = quantity_field()
    reason = reason_field(required=True)

    @validates_schema
    def _currency_or_item(self, data: dict[str, Any], **_: Any) -> None:
        money = "currency" in data or "amount" in data
        item = "sku" in data or "quantity" in data
        if money == item:
            raise ValidationError("give either currency and amount, or sku and quantity")
        for pair in (("currency", "amount"), ("sku", "quantity")):
            present = [name for name in pair if name in data]
            if len(present) == 1:
                missing = pair[1] if present[0] == pair[0] else pair[0]
                raise ValidationError({missing: ["Missing data for required field."]})


class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=32))


class StockQuerySchema(Schema):
    sku = fields.List(sku_field(), validate=validate.Length(max=100))


class EventsQuerySchema(Schema):
    after = fields.String(
        validate=validate.Length(max=events.MAX_CURSOR_DIGITS),
        metadata={"description": "a `next_cursor` (or an event's `id`); omitted: the oldest kept"},
    )
    types = fields.List(
        fields.String(validate=validate.Length(max=1000)),
        data_key="type",
        metadata={"description": "only these types: repeated, comma-separated, or both"},
    )
    limit = fields.Integer(
        load_default=events.DEFAULT_LIMIT, validate=validate.Range(min=1, max=events.MAX_LIMIT)
    )


# --- responses --------------------------------------------------------------------------------
#
# What the server sends, field for field: a field always present is required, one that may be
# null says so, and loading a real body with unknown=RAISE refuses any field not declared here.
# tests/contract checks every body the test suite gets against these (and the SDK's reading of
# it); the OpenAPI document is generated from them.


def _int(**kwargs: Any) -> StrictInteger:
    return StrictInteger(required=True, **kwargs)


def _str(**kwargs: Any) -> fields.String:
    return fields.String(required=True, **kwargs)


def _rfc3339(value: str) -> None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise ValidationError("not an RFC 3339 timestamp") from error
    if parsed.tzinfo is None:
        raise ValidationError("an RFC 3339 timestamp needs its offset")


def _timestamp(**kwargs: Any) -> fields.String:
    # A string with a format check on load only: handlers that return dicts are dumped
    # through these schemas, and their timestamps must go out exactly as the store wrote them.
    return fields.String(
        required=True, validate=_rfc3339, metadata={"format": "date-time"}, **kwargs
    )


def _list(schema: type[Schema], **kwargs: Any) -> fields.List:
    return fields.List(fields.Nested(schema), required=True, **kwargs)


def always_present(schema: type[Schema], name: str) -> type[Schema]:
    """``schema`` as the server sends it back: every field present (the defaults the request
    side fills in are filled in), each keeping its type, nullability and rules."""
    declared: dict[str, Any] = {}
    for field_name, field in schema._declared_fields.items():
        sent = copy.copy(field)
        sent.required = True
        sent.load_default = missing
        declared[field_name] = sent
    return type(name, (schema,), declared)


class BalancesSchema(Schema):
    balances = _list(MoneySchema)


class InventoryEntrySchema(Schema):
    sku = _str()
    quantity = _int()


class InventorySchema(Schema):
    items = _list(InventoryEntrySchema)


class LedgerEntrySchema(Schema):
    id = _int()
    currency = _str()
    delta = _int()
    balance_after = _int()
    kind = _str(
        validate=validate.OneOf(["purchase", "grant", "refund", "adjust", "topup", "chargeback"])
    )
    reference = _str()
    created_at = _timestamp()


class LedgerPageSchema(Schema):
    entries = _list(LedgerEntrySchema)
    next_cursor = _str(allow_none=True, metadata={"description": "null on the last page"})


class GrantedSchema(Schema):
    """One thing granted: ``{sku, quantity}`` or ``{currency, amount}``."""

    sku = fields.String()
    quantity = StrictInteger()
    currency = fields.String()
    amount = StrictInteger()

    @validates_schema
    def _one_pair(self, data: dict[str, Any], **_: Any) -> None:
        if set(data) not in ({"sku", "quantity"}, {"currency", "amount"}):
            raise ValidationError("either sku and quantity, or currency and amount")


class PurchaseSchema(Schema):
    id = _str(metadata={"format": "uuid"})
    player_id = _str()
    sku = _str()
    quantity = _int()
    price = fields.Nested(MoneySchema, required=True, metadata={"description": "total charged"})
    unit_price = fields.Nested(MoneySchema, required=True)
    catalog_version = _int()
    status = _str(validate=validate.OneOf(["completed", "refunded"]))
    granted = _list(GrantedSchema)
    created_at = _timestamp()
    refunded_at = _timestamp(allow_none=True)
    refund_reason = _str(allow_none=True)
    offer_id = _str(
        allow_none=True, metadata={"description": "the offer that priced it; null: list price"}
    )


class PurchaseEnvelopeSchema(Schema):
    purchase = fields.Nested(PurchaseSchema, required=True)


class PurchaseResultSchema(Schema):
    purchase = fields.Nested(PurchaseSchema, required=True)
    balances = _list(MoneySchema)
    granted = _list(GrantedSchema)


class PurchasePageSchema(Schema):
    purchases = _list(PurchaseSchema)
    next_cursor = _str(allow_none=True, metadata={"description": "null on the last page"})


class GrantSchema(Schema):
    id = _str(metadata={"format": "uuid"})
    player_id = _str()
    reason = _str()
    granted = _list(GrantedSchema)
    created_at = _timestamp()


class GrantResultSchema(Schema):
    grant = fields.Nested(GrantSchema, required=True)
    balances = _list(MoneySchema)
    inventory = _list(InventoryEntrySchema)


class ConsumeResultSchema(Schema):
    sku = _str()
    quantity = _int(metadata={"description": "what is left"})


class HoldRequestSchema(Schema):
    sku = sku_field(required=True, metadata={"description": "a limited item (one with stock)"})
    quantity = quantity_field(load_default=1)


class HoldSchema(Schema):
    id = _str(metadata={"format": "uuid"})
    sku = _str()
    quantity = _int()
    status = _str(
        validate=validate.OneOf(["active", "consumed", "released", "expired"]),
        metadata={"description": "active until bought with, released, or past expires_at"},
    )
    expires_at = _timestamp()
    created_at = _timestamp()


class HoldEnvelopeSchema(Schema):
    hold = fields.Nested(HoldSchema, required=True)


class CatalogDocumentSchema(Schema):
    """A catalog as the studio writes it: the body of PUT /v1/admin/catalog/draft."""

    currencies = fields.List(fields.Nested(CurrencySchema))
    items = fields.List(fields.Nested(ItemSchema))
    products = fields.List(fields.Nested(ProductSchema))
    segments = fields.List(fields.Nested(SegmentSchema))
    offers = fields.List(fields.Nested(OfferSchema))
    promo_codes = fields.List(fields.Nested(PromoCodeSchema))
    risk = fields.Nested(RiskSchema, allow_none=True, metadata={"description": "absent: no limits"})


SentCurrencySchema = always_present(CurrencySchema, "SentCurrencySchema")
SentItemSchema = always_present(ItemSchema, "SentItemSchema")
SentProductGrantsSchema = always_present(ProductGrantsSchema, "SentProductGrantsSchema")


class SentProductSchema(ProductSchema):
    grants = fields.Nested(SentProductGrantsSchema, required=True)


SentOfferSchema = always_present(OfferSchema, "SentOfferSchema")
SentPromoCodeSchema = always_present(PromoCodeSchema, "SentPromoCodeSchema")


SentWindowLimitSchema = always_present(WindowLimitSchema, "SentWindowLimitSchema")


class SentRiskSchema(Schema):
    """A risk policy as the server sends it: every list and every field present."""

    spend_limits = _list(SentWindowLimitSchema)
    earn_limits = _list(SentWindowLimitSchema)
    mint_breakers = _list(always_present(MintBreakerSchema, "SentMintBreakerSchema"))
    tiers = _list(always_present(TierSchema, "SentTierSchema"))
    refund_limits = _list(always_present(RefundLimitSchema, "SentRefundLimitSchema"))


class SentCatalogSchema(Schema):
    """A catalog as the server sends it: every field of every currency, item and product present
    (segments, offers and codes with every field too, in what was stored with them)."""

    currencies = _list(SentCurrencySchema)
    items = _list(SentItemSchema)
    products = _list(SentProductSchema)
    segments = _list(SegmentSchema)
    offers = _list(SentOfferSchema)
    promo_codes = _list(SentPromoCodeSchema)
    risk = fields.Nested(
        SentRiskSchema, required=True, allow_none=True, metadata={"description": "null: no policy"}
    )


class PriceForYouSchema(MoneySchema):
    offer_id = _str(allow_none=True, metadata={"description": "null: the list price"})


class LiveItemSchema(SentItemSchema):  # type: ignore[misc,valid-type]
    def _drop_rendered(self, data: Any, **_: Any) -> Any:
        return data  # here price_for_you is the point

    price_for_you = fields.List(
        fields.Nested(PriceForYouSchema),
        required=True,
        metadata={"description": "the reader's own unit price for each of `prices`"},
    )


class LiveCatalogSchema(Schema):
    """The live catalog as a reader sees it: its prices, its locale's text, its real-money
    products; no segments, offers or codes (they stay with the studio)."""

    version = _int()
    locale = _str(
        allow_none=True, metadata={"description": "the locale of the text; null: default"}
    )
    currencies = _list(SentCurrencySchema)
    items = _list(LiveItemSchema)
    # The real-money products a top-up screen offers (docs/stores.md).
    products = _list(SentProductSchema)


class RedeemRequestSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))


class RedeemResultSchema(Schema):
    code = _str()
    offer_id = _str(allow_none=True, metadata={"description": "the offer the code unlocked"})
    granted = _list(GrantedSchema)
    balances = _list(MoneySchema)
    inventory = _list(InventoryEntrySchema)


class PlayerAttributesRequestSchema(PlayerAttributesSchema):
    pass


class PlayerAttributesResultSchema(Schema):
    player_id = _str()
    first_seen = _timestamp(allow_none=True)
    country = _str(allow_none=True)
    last_purchase = _timestamp(allow_none=True)
    spend = _list(MoneySchema)
    attributes = fields.Dict(required=True)


class StockEntrySchema(Schema):
    sku = _str()
    remaining = _int()


class StockSchema(Schema):
    stock = _list(StockEntrySchema)


class PublishedVersionSchema(Schema):
    """What publishing (or rolling back) made: the new version, live at once."""

    version = _int()
    notes = _str()
    published_by = _str()
    published_at = _timestamp()


class VersionSummarySchema(PublishedVersionSchema):
    live = fields.Boolean(required=True)


class VersionListSchema(Schema):
    versions = _list(VersionSummarySchema)


class VersionDetailSchema(VersionSummarySchema, SentCatalogSchema):
    """A published version: its summary and its whole catalog, as a draft is sent."""


class RestockResultSchema(Schema):
    sku = _str()
    remaining = _int()


class EventSchema(Schema):
    id = _int(metadata={"description": "the event's position in its game's feed"})
    type = _str(validate=validate.OneOf(events.EVENT_TYPES))
    player_id = _str(allow_none=True)
    created_at = _timestamp()
    data = fields.Dict(required=True, metadata={"description": "per type: see docs/api.md"})


class EventPageSchema(Schema):
    events = _list(EventSchema)
    next_cursor = _str(
        metadata={"description": "where to go on from (the last event's id, or `after`)"}
    )


# --- headers and a route's own error answers (the shared ones: api/openapi.py) ----------------

ETAG: dict[str, Any] = {
    "ETag": {
        "description": "The representation's ETag, for If-None-Match or If-Match.",
        "schema": {"type": "string"},
        "required": True,
    }
}
IF_NONE_MATCH: dict[str, Any] = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": "The ETag of the catalog the client holds: 304 if it is still the live one.",
}
ACCEPT_LANGUAGE: dict[str, Any] = {
    "in": "header",
    "name": "Accept-Language",
    "required": False,
    "schema": {"type": "string"},
    "description": "The locales the reader prefers: item names and descriptions in the best"
    " one the catalog has (`localized`), else the catalog's own text.",
}


def if_match(*, required: bool) -> dict[str, Any]:
    return {
        "in": "header",
        "name": "If-Match",
        "required": required,
        "schema": {"type": "string"},
        "description": "The draft's ETag as read: 412 if the draft changed since.",
    }


def codes_by_status(codes: list[str] | tuple[str, ...]) -> dict[int, list[str]]:
    """Error codes grouped by their HTTP status, as the error table says."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(ERROR_TABLE[code][0], []).append(code)
    return by_status


def describe_codes(codes: list[str]) -> str:
    """A response's description: each code with its default message."""
    return "; ".join(f"`{code}`: {ERROR_TABLE[code][1].default_message}" for code in codes)


# How describe_codes names a code, read back by documented_codes.
_DESCRIBED_CODE = re.compile(r"`([a-z_]+)`:")


def documented_codes(description: str) -> frozenset[str]:
    """The error codes a response's description names (as describe_codes writes them)."""
    return frozenset(_DESCRIBED_CODE.findall(description))


def fails_with(blp: Blueprint, *codes: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Documents the error codes a route answers for reasons of its own (a business rejection,
    an unknown id), one response per status of the error table, each with the error envelope."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        for status, group in codes_by_status(codes).items():
            description = describe_codes(group)
            view = blp.alt_response(status, schema=ErrorSchema, description=description)(view)
        return view

    return decorate


class ErrorDetailSchema(Schema):
    code = _str()
    message = _str()
    details = fields.Dict(required=True)
    request_id = _str()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)


class StatusSchema(Schema):
    status = _str()
