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
S = TypeVar("S", bound=marshmallow.Schema)

# The arguments of a remembered schema's bodies (see remembered), kept by the body's bytes: at
# most this many bodies per schema (then they are forgotten all at once), each this long at most.
REMEMBERED_BODIES = 1024
REMEMBERED_BODY_BYTES = 1024

IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": True,
    "schema": {"type": "string", "minLength": 16, "maxLength": 255},
    "description": "16 to 255 printable ASCII characters; scope (game, sub, key).",
}


class RememberingParser(FlaskParser):
    """webargs' Flask parser, remembering the arguments of the valid JSON bodies of the
    schemas given to :func:`remembered`, by the bodies' bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remembered: dict[marshmallow.Schema, dict[bytes, Any]] = {}

    def remember(self, schema: marshmallow.Schema) -> None:
        self._remembered.setdefault(schema, {})

    def parse(self, argmap: Any, req: Request | None = None, **kwargs: Any) -> Any:
        """webargs' parse; for a remembered schema's JSON body, the arguments its bytes gave
        before, if they were valid (an invalid body is loaded every time: same 422)."""
        loads = self._remembered.get(argmap) if isinstance(argmap, marshmallow.Schema) else None
        location = kwargs.get("location") or self.location
        if loads is None or location != "json" or kwargs.get("validate"):
            return super().parse(argmap, req, **kwargs)
        req = req if req is not None else self.get_default_request()
        body = req.get_data(cache=True)
        if not body or len(body) > REMEMBERED_BODY_BYTES or not is_json_request(req):
            return super().parse(argmap, req, **kwargs)
        known = loads.get(body)
        if known is not None:
            return _copied(known)
        parsed = super().parse(argmap, req, **kwargs)
        if len(loads) >= REMEMBERED_BODIES:
            loads.clear()
        loads[body] = _copied(parsed)
        return parsed


def _copied(value: Any) -> Any:
    """``value`` with its dicts and lists new: a handler gets arguments of its own."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the parser above (its documented ARGUMENTS_PARSER)."""

    ARGUMENTS_PARSER = RememberingParser()


def remembered(schema: S) -> S:
    """``schema``, its valid JSON bodies' arguments remembered by the bodies' bytes: a game's
    purchases are a few bodies sent again and again (an item at its price), and marshmallow
    loaded each anew. Only for a schema whose load depends on the body alone (no context,
    clock or database) and gives dicts, lists and immutable values."""
    Blueprint.ARGUMENTS_PARSER.remember(schema)
    return schema


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
