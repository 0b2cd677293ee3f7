"""The store's idempotency record of a request, built at the HTTP edge.

The API's handlers and the studio page's forms build it the same way, from the Flask request:
the scope (game, account, key) and the fingerprint of method, path and the canonical JSON of
the body (store.idempotency.fingerprint). Stored keys replay only while this stays as it is.
"""

from __future__ import annotations

from typing import Any, Protocol

from flask import g, request

from ..store.idempotency import Request, fingerprint
from .services import services


class Actor(Protocol):
    """Who acts on a request: a token's principal on the API, a session on the page."""

    @property
    def game(self) -> str: ...

    @property
    def subject(self) -> str: ...


def json_body() -> Any:
    """The JSON body as sent (None without one): what an API request's fingerprint covers."""
    return request.get_json(silent=True) if request.content_length else None


def idempotent_request(who: Actor, key: str, raw_body: Any) -> Request:
    """The idempotency record of this request: scope, key and fingerprint of the raw body."""
    config = services().config
    return Request(
        game=who.game,
        subject=who.subject,
        key=key,
        fingerprint=fingerprint(request.method, request.path, raw_body),
        request_id=g.request_id,
        ttl_seconds=config.idempotency_ttl,
        wait_ms=config.idempotency_wait_ms,
    )
