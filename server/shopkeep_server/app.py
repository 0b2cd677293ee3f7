"""The application factory."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

import psycopg
from flask import Flask, Response, g, request, send_from_directory
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from . import __version__, web
from .api import ops, player, service, studio
from .api.openapi import CommonResponsesPlugin
from .api.schemas import ErrorSchema
from .config import Config
from .db import Database, DatabaseUnavailable, PooledDatabase
from .errors import (
    BadRequest,
    Forbidden,
    InternalError,
    NotFound,
    PayloadTooLarge,
    StoreError,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
    error_body,
    from_database,
)
from .runtime import Services, install
from .store.rules import flatten_errors

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Endpoints whose bodies may be larger than the general limit: a whole catalog.
LARGE_BODY_ENDPOINTS = {"studio.put_draft", "studio.validate_catalog"}


class StrictJSONProvider(DefaultJSONProvider):
    """JSON without NaN or Infinity: they are not JSON and not money."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        def refuse(constant: str) -> None:
            raise ValueError(f"{constant} is not valid JSON")

        return json.loads(s, parse_constant=refuse, **kwargs)


class ShopkeepApi(Api):
    """flask-smorest's Api, answering every HTTP error with the API's error envelope."""

    ERROR_SCHEMA = ErrorSchema
    # Every operation lists its error statuses itself (api/openapi.py), not one vague default.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def handle_http_exception(self, error: HTTPException) -> Response:
        return render_error(_from_http_exception(error))


def _from_http_exception(error: HTTPException) -> StoreError:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if status == 422 and "messages" in data:
        # webargs: {"json": {...}} or {"query": {...}}; the location is not part of the path.
        details: dict[str, list[str]] = {}
        for messages in data["messages"].values():
            details.update(flatten_errors(messages))
        return ValidationFailed(details=details)
    if status == 400:
        return BadRequest()
    if status == 404:
        return NotFound("no such endpoint")
    if status == 405:
        return NotFound(f"{request.method} is not allowed here")
    if status == 413:
        return PayloadTooLarge()
    if status == 415:
        return UnsupportedMediaType()
    if status >= 500:
        original = getattr(error, "original_exception", None)
        if original is not None:
            return _from_exception(original)
        return InternalError()
    if status == 401:
        return Unauthenticated()
    if status == 403:
        return Forbidden()
    return BadRequest(error.description)


def _from_exception(error: BaseException) -> StoreError:
    if isinstance(error, StoreError):
        return error
    if isinstance(error, DatabaseUnavailable):
        return Unavailable(headers={"Retry-After": "1"})
    if isinstance(error, psycopg.Error):
        translated = from_database(error)
        if translated is not None:
            return translated
        if isinstance(error, psycopg.OperationalError | psycopg.errors.QueryCanceled):
            log.warning("database unavailable: %s", error)
            return Unavailable(headers={"Retry-After": "1"})
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return InternalError()


def render_error(error: StoreError) -> Response:
    body = error_body(error.code, error.message, error.details, g.get("request_id", "-"))
    response = Response(json.dumps(body), status=error.status, mimetype="application/json")
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def create_app(config: Config | None = None, *, database: Database | None = None) -> Flask:
    """Builds the Flask app. Without ``database`` it opens a pool on config.database_url."""
    config = config or Config.from_env()
    if database is None:
        if not config.database_url:
            raise RuntimeError("create_app needs SHOPKEEP_DATABASE_URL or a database")
        database = PooledDatabase(config, config.database_url)

    app = Flask(__name__)
    if config.proxy_hops:
        # Behind a TLS-terminating proxy: https is what the client used (Secure cookies).
        hops = config.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.json = StrictJSONProvider(app)
    app.config.update(
        MAX_CONTENT_LENGTH=config.max_catalog_bytes,
        API_TITLE="Shopkeep",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        API_SPEC_OPTIONS={
            "info": {
                "description": "The in-game item store a studio runs itself. Amounts are "
                "integers in each currency's minor unit. The whole contract is docs/api.md in "
                "the Shopkeep repository."
            },
            "security": [{"bearerAuth": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
        },
    )
    services = Services.build(config, database)
    install(app, services)
    metrics = services.metrics

    api = ShopkeepApi(app, spec_kwargs={"extra_plugins": [CommonResponsesPlugin()]})
    for blueprint in (player.blp, service.blp, studio.blp, ops.blp):
        api.register_blueprint(blueprint)
    app.register_blueprint(web.blp)
    app.register_error_handler(Exception, lambda error: render_error(_from_exception(error)))

    @app.get("/docs/assets/<path:filename>")
    def docs_assets(filename: str) -> Response:
        # Swagger UI served from the swagger-ui-bundle package: /docs works offline.
        return send_from_directory(str(swagger_ui_path), filename, max_age=86400)

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        if request.method in ("POST", "PUT", "PATCH"):
            _check_body(config)

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.requests.labels(request.method, endpoint, str(response.status_code)).inc()
        if "started" in g:
            metrics.latency.labels(request.method, endpoint).observe(
                time.perf_counter() - g.started
            )
        return response

    @app.teardown_appcontext
    def _nothing_to_release(_: BaseException | None) -> None:
        # Connections go back to the pool as each unit of work ends; nothing is held here.
        return None

    return app


def _check_body(config: Config) -> None:
    """413 past the body limit, 415 for a body that is not JSON, 400 for broken JSON; before
    any handler runs, so a bad body changes nothing."""
    limit = (
        config.max_catalog_bytes
        if request.endpoint in LARGE_BODY_ENDPOINTS
        else config.max_body_bytes
    )
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body may be at most {limit} bytes")
    data = request.get_data(cache=True)
    if len(data) > limit:
        raise PayloadTooLarge(f"the body may be at most {limit} bytes")
    if not data or request.blueprint == web.blp.name:
        return  # the studio page posts HTML forms; the size limit above applies to them too
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    try:
        request.get_json()
    except HTTPException as exc:
        raise BadRequest() from exc
