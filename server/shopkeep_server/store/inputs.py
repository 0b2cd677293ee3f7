"""What the studio's operations take (publish, rollback, restock, refund), as schemas: the API's
request bodies and the studio page's forms load the same ones, so both refuse alike."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from .rules import amount_field, reason_field, text_field


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


class RiskReasonSchema(Schema):
    """A freeze, an unfreeze or a breaker reset: why, in one line."""

    reason = reason_field(required=True)
