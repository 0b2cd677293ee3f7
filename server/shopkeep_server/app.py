"""The application factory."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from typing import Any, NoReturn

import psycopg
from flask import Flask, Response, g, request, send_from_directory
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api
from psycopg_pool import PoolTimeout
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from . import __version__, logs, tracing, web
from .api import holds, ops, player, receipts, risk, service, studio, webhooks
from .api import offers as offers_api
from .api.openapi import CommonResponsesPlugin
from .api.schemas import ErrorSchema
from .config import Config
from .db import Database, DatabaseUnavailable, PooledDatabase
from .errors import (
    STORED_REJECTIONS,
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
from .metrics import Metrics
from .runtime import Services, install, services
from .serving import ARRIVED, CLOSE_CONNECTION
from .store.rules import MAX_JSON_DEPTH, check_path_parameters, flatten_errors, matches

log = logging.getLogger(__name__)

# An incoming X-Request-Id is kept when it matches (the whole string); otherwise one is made.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
# Endpoints whose bodies may be larger than the general limit: a whole catalog.
LARGE_BODY_ENDPOINTS = {"studio.put_draft", "studio.validate_catalog"}
# A body over the limit is still read, and thrown away, up to this many bytes, so that the
# connection can carry the client's next request; past it the server closes the connection
# after the 413 (serving.CLOSE_CONNECTION asks the gunicorn worker to).
DISCARD_BYTES = 8 * 1024 * 1024


class StrictJSONProvider(DefaultJSONProvider):
    """JSON without NaN or Infinity (not JSON, not money), no number that overflows to
    infinity, and nesting at most MAX_JSON_DEPTH deep (400 bad_request beyond)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            # One decoder for every body (json.loads with these options builds one per call).
            value = (
                json.loads(s, cls=_StrictDecoder, **kwargs)
                if kwargs
                else _STRICT_DECODER.decode(_json_text(s))
            )
        except RecursionError as exc:  # the parser recurses per level: thousands of them
            raise BadRequest(f"the JSON may nest at most {MAX_JSON_DEPTH} levels") from exc
        # A text with no more brackets than the limit cannot nest deeper: most bodies are a
        # few brackets, counted faster than the parsed value is walked.
        brackets = (
            s.count("{") + s.count("[") if isinstance(s, str) else s.count(b"{") + s.count(b"[")
        )
        if (
            brackets > MAX_JSON_DEPTH
            and json_depth(value, stop_after=MAX_JSON_DEPTH) > MAX_JSON_DEPTH
        ):
            raise BadRequest(f"the JSON may nest at most {MAX_JSON_DEPTH} levels")
        return value


def _refuse_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


class _StrictDecoder(json.JSONDecoder):
    """The standard decoder, refusing NaN, Infinity and numbers that overflow to infinity."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "parse_constant": _refuse_constant, "parse_float": _finite})


_STRICT_DECODER = _StrictDecoder()


def _json_text(s: str | bytes) -> str:
    """The text json.loads would decode: bytes in the encoding their first bytes show (UTF-8,
    16 or 32), a str as it is unless it starts with a byte order mark."""
    if isinstance(s, str):
        if s.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", s, 0)
        return s
    return s.decode(json.detect_encoding(s), "surrogatepass")


def json_depth(value: Any, *, stop_after: int) -> int:
    """How many objects and arrays deep ``value`` nests (a scalar is 0), counted without
    recursion; stops looking once past ``stop_after``."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > stop_after:
            break
        pending.extend((child, depth + 1) for child in children)
    return deepest


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
        _count_database_error(error.__cause__)
        return Unavailable(headers={"Retry-After": "1"})
    if isinstance(error, psycopg.Error):
        translated = from_database(error)
        if translated is not None:
            return translated
        _count_database_error(error)
        if isinstance(error, psycopg.OperationalError | psycopg.errors.QueryCanceled):
            log.warning("database unavailable: %s", error)
            return Unavailable(headers={"Retry-After": "1"})
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return InternalError()


def _count_database_error(cause: BaseException | None) -> None:
    """A database failure in the metrics: no connection in time, or an error by its SQLSTATE
    class (the store's own refusals never get here: they are translated above)."""
    metrics = services().metrics
    if isinstance(cause, PoolTimeout):
        metrics.pool_timeouts.inc()
    elif isinstance(cause, psycopg.Error):
        sqlstate = cause.sqlstate or ""
        metrics.database_errors.labels(sqlstate[:2] or "none").inc()


def _count_answer(metrics: Metrics, route: str, response: Response) -> None:
    """The idempotency and conflict counters of one API answer. A key is stored with the
    outcomes the store keeps (a 2xx, or a 409 whose code is a final rejection); a replay says
    so in its Idempotent-Replayed header."""
    code = None
    if response.status_code == 409:
        try:
            code = str(json.loads(response.get_data())["error"]["code"])
        except (ValueError, KeyError, TypeError):
            code = "unknown"
        metrics.conflicts.labels(route, code).inc()
    risk.count_refusal(metrics, response)
    if "idempotency_key" not in g:
        return  # only a request with an Idempotency-Key is stored or replayed
    # getlist: Headers.get raises and catches a KeyError for a missing header.
    if response.headers.getlist("Idempotent-Replayed") == ["true"]:
        metrics.idempotency_replays.labels(route).inc()
    elif 200 <= response.status_code < 300 or code in STORED_REJECTIONS:
        metrics.idempotency_stored.labels(route).inc()


def render_error(error: StoreError) -> Response:
    body = error_body(error.code, error.message, error.details, g.get("request_id", "-"))
    response = Response(json.dumps(body), status=error.status, mimetype="application/json")
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def create_app(config: Config | None = None, *, database: Database | None = None) -> Flask:
    """Builds the Flask app. Without ``database`` it opens a pool on config.database_url."""
    config = config or Config.from_env()
    tracer_provider = tracing.start_from_env()  # before the pool: its connections are traced
    if database is None:
        if not config.database_url:
            raise RuntimeError("create_app needs SHOPKEEP_DATABASE_URL or a database")
        database = PooledDatabase(config, config.database_url)

    app = Flask(__name__)
    if tracer_provider is not None:
        tracing.trace_app(app, tracer_provider)
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
    if isinstance(database, PooledDatabase):
        metrics.watch_pool(database.pool)
        database.on_wait = metrics.pool_wait.observe

    api = ShopkeepApi(app, spec_kwargs={"extra_plugins": [CommonResponsesPlugin()]})
    for blueprint in (
        player.blp,
        holds.blp,
        service.blp,
        studio.blp,
        webhooks.blp,
        ops.blp,
        receipts.blp,
        offers_api.blp,
        risk.blp,
    ):
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
        if ARRIVED in request.environ:  # gunicorn's worker stamped when it had the request ready
            metrics.queue.observe(g.started - request.environ[ARRIVED])
            g.started = request.environ[ARRIVED]
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if matches(REQUEST_ID_PATTERN, incoming) else uuid.uuid4().hex
        # Every log line written while this request is handled carries its id.
        g.request_id_token = logs.request_id_var.set(g.request_id)
        _check_body(config)
        # Path segments the API's rules give as plain strings (sku, player_id): a NUL or a
        # newline is refused here, before any handler hands it to PostgreSQL. (The studio page
        # looks its segments up in the draft and answers with its own pages.)
        if request.blueprint != web.blp.name:
            check_path_parameters(request.view_args or {})

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        # One route for the metrics and the access line: the OpenAPI path of the rule.
        route = logs.route_of(request.url_rule)
        requests, latency = metrics.request_series(request.method, route, response.status_code)
        requests.inc()
        elapsed = time.perf_counter() - g.started if "started" in g else 0.0
        if "started" in g:
            latency.observe(elapsed)
        _count_answer(metrics, route, response)
        metrics.refresh_pool()
        caller = g.get("principal")
        logs.access(
            method=request.method,
            route=route,
            path=request.path,
            status=response.status_code,
            duration_ms=elapsed * 1000,
            game=caller.game if caller is not None else None,
            subject=caller.subject if caller is not None else None,
        )
        return response

    @app.teardown_request
    def forget_request_id(_: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            logs.request_id_var.reset(token)

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
        _refuse_body(limit)
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:  # a chunked body without Content-Length ran past the limit
        _refuse_body(limit)
    if len(data) > limit:
        _refuse_body(limit)
    if not data or request.blueprint == web.blp.name:
        return  # the studio page posts HTML forms; the size limit above applies to them too
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    try:
        request.get_json()
    except HTTPException as exc:
        raise BadRequest() from exc


def _refuse_body(limit: int) -> NoReturn:
    """413 for a body over ``limit``. What the client sends is read and thrown away up to
    DISCARD_BYTES, so its next request on this connection is understood; a longer body is not
    read, and the connection is closed after the answer (with `Connection: close`)."""
    declared = request.content_length
    drained = declared is None or declared <= DISCARD_BYTES
    if drained:
        stream = request.environ["wsgi.input"]
        budget = DISCARD_BYTES
        try:
            while budget > 0:
                chunk = stream.read(min(65_536, budget))
                if not chunk:
                    break
                budget -= len(chunk)
            else:
                drained = False  # still more to come: a chunked body past the bound
        except (OSError, ValueError):
            drained = False  # the client went away or broke the framing mid-body
    if not drained:
        request.environ[CLOSE_CONNECTION] = True
    raise PayloadTooLarge(f"the body may be at most {limit} bytes")
