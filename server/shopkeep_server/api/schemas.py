"""Request and response schemas of the HTTP API; the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..store.rules import (
    CurrencySchema,
    ItemSchema,
    MoneySchema,
    amount_field,
    currency_field,
    quantity_field,
    reason_field,
    sku_field,
    text_field,
)

# --- requests ---------------------------------------------------------------------------------


class PurchaseRequestSchema(Schema):
    sku = sku_field(required=True)
    quantity = quantity_field(load_default=1)
    currency = currency_field(metadata={"description": "needed when the item has several prices"})
    expected_price = fields.Nested(
        MoneySchema, metadata={"description": "the unit price the player saw"}
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


class RefundRequestSchema(Schema):
    reason = reason_field(required=True)


class PublishRequestSchema(Schema):
    notes = text_field(load_default="", max_length=1000, multiline=True)


class RollbackRequestSchema(Schema):
    version = fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=2**31 - 1)
    )


class RestockRequestSchema(Schema):
    add = amount_field(required=True)


class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=32))


class StockQuerySchema(Schema):
    sku = fields.List(sku_field(), validate=validate.Length(max=100))


# --- responses --------------------------------------------------------------------------------


class BalancesSchema(Schema):
    balances = fields.List(fields.Nested(MoneySchema))


class InventoryEntrySchema(Schema):
    sku = fields.String()
    quantity = fields.Integer()


class InventorySchema(Schema):
    items = fields.List(fields.Nested(InventoryEntrySchema))


class LedgerEntrySchema(Schema):
    id = fields.Integer()
    currency = fields.String()
    delta = fields.Integer()
    balance_after = fields.Integer()
    kind = fields.String(metadata={"enum": ["purchase", "grant", "refund", "adjust"]})
    reference = fields.String()
    created_at = fields.String(metadata={"format": "date-time"})


class LedgerPageSchema(Schema):
    entries = fields.List(fields.Nested(LedgerEntrySchema))
    next_cursor = fields.String(allow_none=True)


class GrantedSchema(Schema):
    sku = fields.String()
    quantity = fields.Integer()
    currency = fields.String()
    amount = fields.Integer()


class PurchaseSchema(Schema):
    id = fields.String(metadata={"format": "uuid"})
    player_id = fields.String()
    sku = fields.String()
    quantity = fields.Integer()
    price = fields.Nested(MoneySchema, metadata={"description": "total charged"})
    unit_price = fields.Nested(MoneySchema)
    catalog_version = fields.Integer()
    status = fields.String(metadata={"enum": ["completed", "refunded"]})
    granted = fields.List(fields.Nested(GrantedSchema))
    created_at = fields.String(metadata={"format": "date-time"})
    refunded_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    refund_reason = fields.String(allow_none=True)


class PurchaseEnvelopeSchema(Schema):
    purchase = fields.Nested(PurchaseSchema)


class PurchaseResultSchema(Schema):
    purchase = fields.Nested(PurchaseSchema)
    balances = fields.List(fields.Nested(MoneySchema))
    granted = fields.List(fields.Nested(GrantedSchema))


class PurchasePageSchema(Schema):
    purchases = fields.List(fields.Nested(PurchaseSchema))
    next_cursor = fields.String(allow_none=True)


class GrantSchema(Schema):
    id = fields.String(metadata={"format": "uuid"})
    player_id = fields.String()
    reason = fields.String()
    granted = fields.List(fields.Nested(GrantedSchema))
    created_at = fields.String(metadata={"format": "date-time"})


class GrantResultSchema(Schema):
    grant = fields.Nested(GrantSchema)
    balances = fields.List(fields.Nested(MoneySchema))
    inventory = fields.List(fields.Nested(InventoryEntrySchema))


class ConsumeResultSchema(Schema):
    sku = fields.String()
    quantity = fields.Integer(metadata={"description": "what is left"})


class CatalogDocumentSchema(Schema):
    """A catalog as the studio writes it: the body of PUT /v1/admin/catalog/draft."""

    currencies = fields.List(fields.Nested(CurrencySchema))
    items = fields.List(fields.Nested(ItemSchema))


class LiveCatalogSchema(CatalogDocumentSchema):
    version = fields.Integer()


class StockEntrySchema(Schema):
    sku = fields.String()
    remaining = fields.Integer()


class StockSchema(Schema):
    stock = fields.List(fields.Nested(StockEntrySchema))


class VersionSummarySchema(Schema):
    version = fields.Integer()
    notes = fields.String()
    published_by = fields.String()
    published_at = fields.String(metadata={"format": "date-time"})
    live = fields.Boolean()


class VersionListSchema(Schema):
    versions = fields.List(fields.Nested(VersionSummarySchema))


class VersionDetailSchema(VersionSummarySchema):
    currencies = fields.List(fields.Nested(CurrencySchema))
    items = fields.List(fields.Nested(ItemSchema))


class RestockResultSchema(Schema):
    sku = fields.String()
    remaining = fields.Integer()


class ErrorDetailSchema(Schema):
    code = fields.String()
    message = fields.String()
    details = fields.Dict()
    request_id = fields.String()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema)


class StatusSchema(Schema):
    status = fields.String()
