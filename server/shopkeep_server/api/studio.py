"""What a studio calls with a studio token: the catalog draft, publishing, stock."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Response, request
from flask_smorest import Blueprint

from ..errors import PreconditionRequired
from ..runtime import services, with_connection
from ..store import catalog
from ..store.idempotency import run_once
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
    "studio", __name__, url_prefix="/v1/admin", description="Catalog editing and publishing"
)

DRAFT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": schemas.CatalogDocumentSchema}},
}


@blp.route("/catalog/draft", methods=["GET"])
@requires("studio")
@blp.response(200, schemas.SentCatalogSchema, headers=schemas.ETAG)
@schemas.fails_with(blp, "not_found")
def get_draft() -> Response:
    """The draft, with its ETag for a later PUT."""
    content, etag = with_connection(lambda conn: catalog.get_draft(conn, principal().game))
    return json_response(content, headers={"ETag": etag})


@blp.route("/catalog/draft", methods=["PUT"])
@requires("studio")
@blp.response(200, schemas.SentCatalogSchema, headers=schemas.ETAG)
@schemas.fails_with(blp, "not_found")
@blp.doc(requestBody=DRAFT_BODY, parameters=[schemas.if_match(required=True)])
def put_draft() -> Response:
    """Replaces the whole draft; If-Match must carry the ETag it was read with."""
    if_match = request.headers.get("If-Match")
    if not if_match:
        raise PreconditionRequired()
    raw = request.get_json(silent=True) if request.content_length else None
    content, etag = with_connection(
        lambda conn: catalog.put_draft(conn, principal().game, raw, if_match=if_match)
    )
    return json_response(content, headers={"ETag": etag})


@blp.route("/catalog/validate", methods=["POST"])
@requires("studio")
@blp.response(200, schemas.SentCatalogSchema)
@blp.doc(requestBody=DRAFT_BODY)
def validate_catalog() -> Response:
    """Checks a catalog exactly as PUT draft would and answers it as the draft would be
    stored (defaults filled in, timestamps in UTC), or the same 422; stores nothing. The
    studio tools compare a file with the store's view of it before anything is pushed."""
    raw = request.get_json(silent=True) if request.content_length else None
    content = with_connection(lambda conn: catalog.validate_catalog(conn, principal().game, raw))
    return json_response(content)


def _studio_operation(work: Any, status: int) -> Response:
    who, idem = principal(), idempotent_request()

    def run(conn: psycopg.Connection) -> Any:
        return run_once(conn, who.game, who.subject, idem, lambda c: (status, work(c)))

    return outcome_response(with_connection(run))


@blp.route("/catalog/publish", methods=["POST"])
@requires("studio", idempotent=True)
@blp.arguments(schemas.PublishRequestSchema)
@blp.response(201, schemas.PublishedVersionSchema)
@schemas.fails_with(blp, "not_found")
@blp.doc(parameters=[IDEMPOTENCY_HEADER, schemas.if_match(required=False)])
def publish(body: dict[str, Any]) -> Response:
    """Publishes the draft as the next version; live at once. With If-Match (the draft's
    ETag), only the draft that was reviewed is published (412 if it changed since)."""
    who = principal()
    buckets = services().config.stock_buckets
    if_match = request.headers.get("If-Match")
    return _studio_operation(
        lambda conn: catalog.publish(
            conn,
            who.game,
            actor=who.subject,
            notes=body["notes"],
            stock_buckets=buckets,
            if_match=if_match,
        ),
        201,
    )


@blp.route("/catalog/rollback", methods=["POST"])
@requires("studio", idempotent=True)
@blp.arguments(schemas.RollbackRequestSchema)
@blp.response(201, schemas.PublishedVersionSchema)
@schemas.fails_with(blp, "not_found")
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def rollback(body: dict[str, Any]) -> Response:
    """Publishes an earlier version's content as a new version."""
    who = principal()
    buckets = services().config.stock_buckets
    return _studio_operation(
        lambda conn: catalog.rollback(
            conn, who.game, version=body["version"], actor=who.subject, stock_buckets=buckets
        ),
        201,
    )


@blp.route("/catalog/versions", methods=["GET"])
@requires("studio")
@blp.response(200, schemas.VersionListSchema)
def list_versions() -> dict[str, Any]:
    """Every published version, newest first."""
    return {"versions": with_connection(lambda conn: catalog.list_versions(conn, principal().game))}


@blp.route("/catalog/versions/<int:version>", methods=["GET"])
@requires("studio")
@blp.response(200, schemas.VersionDetailSchema)
@schemas.fails_with(blp, "not_found")
def get_version(version: int) -> Response:
    """One published version with its content."""
    return json_response(
        with_connection(lambda conn: catalog.get_version(conn, principal().game, version))
    )


@blp.route("/stock/<string:sku>", methods=["POST"])
@requires("studio", idempotent=True)
@blp.arguments(schemas.RestockRequestSchema)
@blp.response(200, schemas.RestockResultSchema)
@schemas.fails_with(blp, "not_found")
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def restock(body: dict[str, Any], sku: str) -> Response:
    """Adds units to a limited item."""
    who = principal()
    return _studio_operation(
        lambda conn: catalog.restock(conn, who.game, sku, add=body["add"], actor=who.subject), 200
    )
