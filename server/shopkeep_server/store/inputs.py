"""What the studio's operations take (publish, rollback, restock, refund), as schemas: the API's
request bodies and the studio page's forms load the same ones, so both refuse alike."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from .events import EVENT_TYPES
from .rules import StrictInteger, WebhookUrl, amount_field, reason_field, text_field

# At most this many events are sent again by one "send again" of a range.
MAX_REDELIVER_EVENTS = 1000


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


class WebhookRequestSchema(Schema):
    """A new webhook endpoint: where, which event types (none: every type), and a note."""

    url = WebhookUrl(required=True)
    types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        load_default=list,
        validate=validate.Length(max=50),
        metadata={"description": "event types to deliver; empty (the default) means all"},
    )
    description = text_field(load_default="", max_length=500)

    @validates_schema
    def _types_once(self, data: dict[str, Any], **_: Any) -> None:
        types = data.get("types", [])
        if len(set(types)) != len(types):
            raise ValidationError({"types": ["must not repeat a type"]})


class RedeliverRequestSchema(Schema):
    """Send one delivered event again (``from_event_id`` alone) or a range of them."""

    from_event_id = StrictInteger(required=True, validate=validate.Range(min=1, max=2**63 - 1))
    to_event_id = StrictInteger(validate=validate.Range(min=1, max=2**63 - 1))

    @validates_schema
    def _a_range(self, data: dict[str, Any], **_: Any) -> None:
        first, last = data.get("from_event_id"), data.get("to_event_id")
        if first is None or last is None:
            return
        if last < first:
            raise ValidationError({"to_event_id": ["must not be before from_event_id"]})
        if last - first >= MAX_REDELIVER_EVENTS:
            raise ValidationError(
                {"to_event_id": [f"a range may hold at most {MAX_REDELIVER_EVENTS} events"]}
            )
