"""Forms that publish, roll back, restock or refund run once per Idempotency-Key.

Each such form carries a key made when the page was rendered, so sending it twice (a double
click, a reload) does it once. The record is the one the API builds (runtime.idempotent_request):
scope (game, studio account, key) and the fingerprint of method, path and the form's values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg

from ..runtime import idempotent_request, with_connection
from ..store import idempotency
from ..store.idempotency import IdempotencyKey, Outcome
from ..store.rules import check_idempotency_key
from .page import current_session


def form_request(key: str | None, body: dict[str, Any]) -> IdempotencyKey:
    """The idempotency key of this form post (well formed, as on the API); its scope is the
    studio account of the page's session."""
    return idempotent_request(check_idempotency_key(key), body)


def run_once(
    key: str | None,
    body: dict[str, Any],
    status: int,
    work: Callable[[psycopg.Connection], Any],
) -> Outcome:
    """Publish, rollback and restock, exactly like api/studio.py runs them."""
    who, idem = current_session(), form_request(key, body)
    return with_connection(
        lambda conn: idempotency.run_once(
            conn, who.game, who.subject, idem, lambda c: (status, work(c))
        )
    )


def outcome_payload(outcome: Outcome) -> tuple[bool, dict[str, Any]]:
    """Whether the operation succeeded, and its stored JSON (the result or the error)."""
    payload = json.loads(outcome.body)
    return outcome.status < 300, payload
