"""Health, readiness and metrics: no token needed."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from ..errors import Unavailable
from ..runtime import services, with_connection
from . import schemas

blp = Blueprint("ops", __name__, url_prefix="/", description="Health and metrics")


PUBLIC: dict[str, Any] = {"security": []}  # no token needed: health checks and scrapers call these


@blp.route("/healthz", methods=["GET"])
@blp.response(200, schemas.StatusSchema)
@blp.doc(**PUBLIC)
def healthz() -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, schemas.StatusSchema)
@blp.doc(**PUBLIC)
def readyz() -> dict[str, Any]:
    """The database answers."""
    row = with_connection(lambda conn: conn.execute("SELECT 1").fetchone())
    if row != (1,):
        raise Unavailable("the database did not answer")
    return {"status": "ready"}


@blp.route("/metrics", methods=["GET"])
@blp.doc(responses={"200": {"description": "Prometheus text format"}}, **PUBLIC)
def metrics() -> Response:
    """Prometheus metrics of every worker of this server."""
    body, content_type = services().metrics.exposition()
    return Response(body, mimetype=content_type.split(";")[0], content_type=content_type)
