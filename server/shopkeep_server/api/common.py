"""What every handler shares: the app's services, authentication, idempotent requests and
rendering of stored outcomes."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from flask import Response, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from ..auth import Authenticator, Principal
from ..config import Config
from ..db import Database, run_with_retry
from ..errors import Forbidden, RateLimited
from ..metrics import Metrics
from ..store.catalog import CatalogCache
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


class RateLimiter:
    """Requests per principal per process (the `limits` library keeps the windows)."""

    def __init__(self, spec: str | None) -> None:
        self._items: list[RateLimitItem] = parse_many(spec) if spec else []
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    def check(self, principal: Principal) -> None:
        for item in self._items:
            if not self._limiter.hit(item, principal.game, principal.subject):
                reset_at, _ = self._limiter.get_window_stats(
                    item, principal.game, principal.subject
                )
                retry_after = max(1, math.ceil(reset_at - time.time()))
                raise RateLimited(
                    f"at most {item} per account", headers={"Retry-After": str(retry_after)}
                )


@dataclasses.dataclass(frozen=True)
class Services:
    """The per-process objects a handler uses, built once by create_app."""

    config: Config
    db: Database
    authenticator: Authenticator
    catalog_cache: CatalogCache
    rate_limiter: RateLimiter
    metrics: Metrics


def services() -> Services:
    return current_app.extensions["shopkeep"]


def with_connection(work: Callable[[psycopg.Connection], T]) -> T:
    """Runs one unit of store work on a pooled connection, retried on transient conflicts."""
    return run_with_retry(services().db, work)


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


def fingerprint(method: str, path: str, body: Any) -> str:
    """What a request's Idempotency-Key is bound to: sha256 of method, path and the canonical
    JSON of the body. Stored with every key: changing it would make old keys unreplayable."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


def idempotent_request() -> IdempotencyKey:
    """This request's Idempotency-Key, with the fingerprint of its method, path and raw body;
    its scope is the principal's (game, subject)."""
    config = services().config
    raw_body = request.get_json(silent=True) if request.content_length else None
    return IdempotencyKey(
        value=g.idempotency_key,
        fingerprint=fingerprint(request.method, request.path, raw_body),
        request_id=g.request_id,
        ttl_seconds=config.idempotency_ttl,
        wait_ms=config.idempotency_wait_ms,
    )


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


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return Response(body, status=status, mimetype="application/json", headers=headers)
