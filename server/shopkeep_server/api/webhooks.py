"""Webhook endpoints, with a studio token: add (the secret shown once), list, delete, rotate the
secret, disable and enable, the delivery log, and "send again"."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Response
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..runtime import with_connection
from ..store import webhooks
from ..store.idempotency import run_once
from ..store.inputs import RedeliverRequestSchema, WebhookRequestSchema
from . import schemas
from .common import (
    IDEMPOTENCY_HEADER,
    idempotent_request,
    json_response,
    outcome_response,
    principal,
    requires,
)

blp = Blueprint(
    "webhooks", __name__, url_prefix="/v1/admin/webhooks", description="Webhook endpoints"
)

# --- responses --------------------------------------------------------------------------------


class WebhookSchema(Schema):
    id = fields.String(required=True, metadata={"format": "uuid"})
    url = fields.String(required=True)
    types = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "the event types delivered; empty means every type"},
    )
    description = fields.String(required=True)
    enabled = fields.Boolean(required=True)
    disabled_reason = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "why the endpoint is disabled (by the studio or the store)"},
    )
    created_at = schemas._timestamp()
    # Until when the secret before the last rotation still signs (null: none does).
    previous_secret_expires_at = schemas._timestamp(allow_none=True)
    delivered_through = schemas._int(
        metadata={"description": "every selected event up to this id has been delivered"}
    )
    failed_attempts = schemas._int(
        metadata={"description": "failed attempts of the next event so far"}
    )
    failing_since = schemas._timestamp(allow_none=True)
    next_attempt_at = schemas._timestamp()


class WebhookWithSecretSchema(Schema):
    webhook = fields.Nested(WebhookSchema, required=True)
    secret = fields.String(
        required=True,
        validate=validate.Regexp(r"^whsec_[A-Za-z0-9+/]+={0,2}$"),
        metadata={"description": "the signing secret (Standard Webhooks), shown only here"},
    )


class WebhookEnvelopeSchema(Schema):
    webhook = fields.Nested(WebhookSchema, required=True)


class WebhookListSchema(Schema):
    webhooks = schemas._list(WebhookSchema)


class DeliverySchema(Schema):
    id = schemas._int()
    event_id = schemas._int()
    attempt = schemas._int()
    status_code = schemas._int(allow_none=True, metadata={"description": "null: no answer"})
    latency_ms = schemas._int()
    response_excerpt = fields.String(required=True)
    error = fields.String(required=True, allow_none=True)
    attempted_at = schemas._timestamp()
    succeeded = fields.Boolean(required=True)


class DeliveryPageSchema(Schema):
    deliveries = schemas._list(DeliverySchema)
    next_cursor = fields.String(
        required=True, allow_none=True, metadata={"description": "null on the last page"}
    )


class DeliveryQuerySchema(schemas.PageQuerySchema):
    event_id = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1))


class RedeliveredSchema(Schema):
    queued = schemas._int(metadata={"description": "events queued to be sent again"})


# --- routes -----------------------------------------------------------------------------------


def _once(work: Any, status: int) -> Response:
    who, idem = principal(), idempotent_request()

    def run(conn: psycopg.Connection) -> Any:
        return run_once(conn, who.game, who.subject, idem, lambda c: (status, work(c)))

    return outcome_response(with_connection(run))


@blp.route("", methods=["POST"])
@requires("studio", idempotent=True)
@blp.arguments(WebhookRequestSchema)
@blp.response(201, WebhookWithSecretSchema)
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def create_webhook(body: dict[str, Any]) -> Response:
    """Adds an endpoint; it gets every event (of its types) from now on. The secret is in
    this answer only (and in its replay with the same Idempotency-Key)."""
    game = principal().game
    return _once(lambda conn: webhooks.create(conn, game, **body), 201)


@blp.route("", methods=["GET"])
@requires("studio")
@blp.response(200, WebhookListSchema)
def list_webhooks() -> Response:
    """The game's endpoints, oldest first, with their delivery state."""
    game = principal().game
    return json_response({"webhooks": with_connection(lambda c: webhooks.list_webhooks(c, game))})


@blp.route("/<string:webhook_id>", methods=["GET"])
@requires("studio")
@blp.response(200, WebhookEnvelopeSchema)
@schemas.fails_with(blp, "not_found")
def get_webhook(webhook_id: str) -> Response:
    """One endpoint with its delivery state."""
    game = principal().game
    return json_response({"webhook": with_connection(lambda c: webhooks.get(c, game, webhook_id))})


@blp.route("/<string:webhook_id>", methods=["DELETE"])
@requires("studio")
@blp.response(204)
@schemas.fails_with(blp, "not_found")
def delete_webhook(webhook_id: str) -> Response:
    """Deletes the endpoint with its delivery log; nothing more is sent to it."""
    game = principal().game
    with_connection(lambda conn: webhooks.delete(conn, game, webhook_id))
    return Response(status=204)


@blp.route("/<string:webhook_id>/rotate-secret", methods=["POST"])
@requires("studio", idempotent=True)
@blp.response(200, WebhookWithSecretSchema)
@schemas.fails_with(blp, "not_found")
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def rotate_secret(webhook_id: str) -> Response:
    """A new secret, shown once. For 24 hours deliveries carry a signature with the old secret
    too, so the receiver can switch over without losing one."""
    game = principal().game
    return _once(lambda conn: webhooks.rotate_secret(conn, game, webhook_id), 200)


@blp.route("/<string:webhook_id>/disable", methods=["POST"])
@requires("studio", idempotent=True)
@blp.response(200, WebhookEnvelopeSchema)
@schemas.fails_with(blp, "not_found")
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def disable_webhook(webhook_id: str) -> Response:
    """Stops deliveries; events keep being kept, and are sent when it is enabled again."""
    game = principal().game
    return _once(
        lambda conn: {"webhook": webhooks.set_enabled(conn, game, webhook_id, enabled=False)},
        200,
    )


@blp.route("/<string:webhook_id>/enable", methods=["POST"])
@requires("studio", idempotent=True)
@blp.response(200, WebhookEnvelopeSchema)
@schemas.fails_with(blp, "not_found")
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def enable_webhook(webhook_id: str) -> Response:
    """Resumes deliveries from the first event not delivered, at once."""
    game = principal().game
    return _once(
        lambda conn: {"webhook": webhooks.set_enabled(conn, game, webhook_id, enabled=True)},
        200,
    )


@blp.route("/<string:webhook_id>/deliveries", methods=["GET"])
@requires("studio")
@blp.arguments(DeliveryQuerySchema, location="query")
@blp.response(200, DeliveryPageSchema)
@schemas.fails_with(blp, "not_found")
def list_deliveries(query: dict[str, Any], webhook_id: str) -> Response:
    """Every attempt, newest first (``event_id`` narrows it to one event)."""
    game = principal().game
    return json_response(
        with_connection(
            lambda conn: webhooks.deliveries(
                conn,
                game,
                webhook_id,
                limit=query["limit"],
                cursor=query.get("cursor"),
                event_id=query.get("event_id"),
            )
        )
    )


@blp.route("/<string:webhook_id>/redeliver", methods=["POST"])
@requires("studio", idempotent=True)
@blp.arguments(RedeliverRequestSchema)
@blp.response(202, RedeliveredSchema)
@schemas.fails_with(blp, "not_found")
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def redeliver(body: dict[str, Any], webhook_id: str) -> Response:
    """Sends delivered events again: ``from_event_id`` alone, or through ``to_event_id`` (at
    most 1000). They go out before the endpoint's next new event."""
    game = principal().game
    return _once(
        lambda conn: webhooks.redeliver(
            conn,
            game,
            webhook_id,
            from_event_id=body["from_event_id"],
            to_event_id=body.get("to_event_id"),
        ),
        202,
    )
