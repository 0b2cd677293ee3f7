"""The store's idempotency record of a request, built at the HTTP edge.

The API's handlers and the studio page's forms build it the same way, from the Flask request:
the key and the fingerprint of method, path and the canonical JSON of the body. The store
keeps the fingerprint as an opaque value; stored keys replay only while this stays as it is.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import g, request

from ..store.idempotency import IdempotencyKey
from .services import services


def json_body() -> Any:
    """The JSON body as sent (None without one): what an API request's fingerprint covers."""
    return request.get_json(silent=True) if request.content_length else None


def fingerprint(method: str, path: str, body: Any) -> str:
    """What a request's Idempotency-Key is bound to: sha256 of method, path and the canonical
    JSON of the body. Stored with every key: changing it would make old keys unreplayable."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


def idempotent_request(key: str, raw_body: Any) -> IdempotencyKey:
    """This request's Idempotency-Key with the fingerprint of its method, path and raw body; its
    scope (game, account) is given with the operation."""
    config = services().config
    return IdempotencyKey(
        value=key,
        fingerprint=fingerprint(request.method, request.path, raw_body),
        request_id=g.request_id,
        ttl_seconds=config.idempotency_ttl,
        wait_ms=config.idempotency_wait_ms,
    )
