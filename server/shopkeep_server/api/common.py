"""What only the API's handlers share: the blueprint class with its arguments parser,
authentication by bearer token with its role and rate limit, the OpenAPI declaration of the
Idempotency-Key header, and JSON responses. The services, the unit of work and the idempotency
record live below, in runtime/, shared with the page."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import flask_smorest
import marshmallow
from flask import Request, Response, g, request
from webargs.flaskparser import FlaskParser, is_json_request

from .. import runtime
from ..auth import Principal
from ..errors import Forbidden
from ..runtime import services
from ..store.idempotency import IdempotencyKey, Outcome
from ..store.rules import check_idempotency_key

T = TypeVar("T")

IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": True,
    "schema": {"type": "string", "minLength": 16, "maxLength": 255},
    "description": "16 to 255 printable ASCII characters; scope (game, sub, key).",
}


class CachedJsonParser(FlaskParser):
    """webargs' Flask parser, taking the JSON body as Flask already parsed it: app._check_body
    parses every API body before the handler runs (``request.get_json``, which Flask caches),
    and webargs would decode the same bytes a second time.

    Only where the two decoders read the bytes alike: webargs decodes strict UTF-8, Flask's
    provider also UTF-16 and 32, a byte order mark and encoded surrogates. Such a body goes to
    webargs as before, which answers it with the same 400."""

    def load_json(self, req: Request, schema: marshmallow.Schema) -> Any:
        data = req.get_data(cache=True)
        if data and is_json_request(req) and _decoded_alike(data):
            return req.get_json(cache=True)
        return super().load_json(req, schema)


def _decoded_alike(data: bytes) -> bool:
    """Whether webargs' decoding (strict UTF-8) and Flask's give ``data`` the same text."""
    if json.detect_encoding(data) != "utf-8":  # UTF-16 or 32, or "utf-8-sig": a byte order mark
        return False
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:  # Flask decodes with surrogatepass
        return False
    return True


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the parser above (its documented ARGUMENTS_PARSER)."""

    ARGUMENTS_PARSER = CachedJsonParser()


def principal() -> Principal:
    return g.principal


def requires(
    *roles: str, idempotent: bool = False
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Authenticates the bearer token, checks its role, the rate limit and, for state-changing
    POSTs, that an Idempotency-Key is present and well formed."""

    def decorate(view: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            found = services().authenticator.authenticate(request.headers.get("Authorization"))
            if found.role not in roles:
                raise Forbidden(f"this needs the {' or '.join(roles)} role, not {found.role}")
            g.principal = found
            services().rate_limiter.check(found)
            if idempotent:
                g.idempotency_key = check_idempotency_key(request.headers.get("Idempotency-Key"))
            return view(*args, **kwargs)

        return wrapper

    return decorate


def idempotent_request() -> IdempotencyKey:
    """This API request's idempotency record (runtime.idempotent_request): the token's account,
    the Idempotency-Key header checked by ``requires``, and the JSON body as sent."""
    return runtime.idempotent_request(g.idempotency_key, runtime.json_body())


def outcome_response(outcome: Outcome) -> Response:
    """The stored outcome, byte for byte; a replay says so in a header."""
    response = Response(outcome.body, status=outcome.status, mimetype="application/json")
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def outcome_label(outcome: Outcome) -> str:
    """How a purchase ended, for the purchases-by-outcome metric."""
    if outcome.replayed:
        return "replayed"
    if outcome.status < 300:
        return "completed"
    try:
        return str(json.loads(outcome.body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "unknown"


def json_text_response(body: str) -> Response:
    """A 200 whose JSON the database rendered (its shape is the route's documented schema,
    which the contract tests hold every answer to): sent as it is."""
    return Response(body, status=200, mimetype="application/json")


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return Response(body, status=status, mimetype="application/json", headers=headers)
