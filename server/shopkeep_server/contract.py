"""The contract table: every error code of the API, its HTTP status, its category and its
default message, in API.md's order. The one home of these facts.

The server's exception classes, the statuses it answers with, what the idempotency layer
stores and how the SQL functions' SQLSTATEs are read all derive from :data:`ERRORS`
(``errors.py``). The SQL raises codes by name and a test checks every one is here; the SDK
keeps a literal mirror (``shopkeep.errors.ERROR_TABLE``) and a test checks it equals this table;
the catalog CLI and the load tests follow the SDK's mirror.

Standard library only: the table must be importable by anything, with nothing else installed.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


class ErrorCategory(enum.Enum):
    """What an error answer says about the request and its Idempotency-Key.

    ``FINAL``
        A business rejection (409): the request was valid and the store said no. The answer is
        stored with the idempotency key in the transaction that rolled the effects back, and a
        retry with the same key replays it byte for byte (``Idempotent-Replayed: true``) even
        after its cause is gone (a top-up after ``insufficient_funds``). A new attempt needs a
        new key. Clients never retry these.
    ``TRANSIENT``
        The outcome is open or not reached yet: the key is in flight elsewhere
        (``idempotency_key_in_use``), the caller is throttled (``rate_limited``), the store is
        unavailable, or it failed (``internal_error``: the request may or may not have run).
        Nothing final is stored for it; re-sending the very same request with the same key is
        safe, and is how a client settles it: the store replays what it did, or does it now.
    ``NOT_STORED``
        The request itself is wrong (malformed, unauthenticated, forbidden, not found, stale,
        too large, not JSON, not valid, key missing or reused). Nothing is stored with the key,
        so re-sending it with the same key runs it again: fix the request (or wait until what it
        names exists) first; re-sending it unchanged gets the same answer.
    """

    FINAL = "final"
    TRANSIENT = "transient"
    NOT_STORED = "not_stored"


# The SQLSTATE the SQL functions raise every FINAL code with (sk_fail); the transaction that
# runs an operation (sk_idempotent) stores exactly these with the key.
SQLSTATE_FINAL = "SKB01"


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorCode:
    """One row of the table."""

    code: str
    status: int
    category: ErrorCategory
    message: str
    # The SQLSTATE the SQL functions raise this code with, when they raise it at all.
    sqlstate: str | None = None


_FINAL, _TRANSIENT, _NOT_STORED = (
    ErrorCategory.FINAL,
    ErrorCategory.TRANSIENT,
    ErrorCategory.NOT_STORED,
)

ERRORS: tuple[ErrorCode, ...] = (
    ErrorCode("bad_request", 400, _NOT_STORED, "the request body is not valid JSON"),
    ErrorCode("idempotency_key_missing", 400, _NOT_STORED, "this request needs an Idempotency-Key"),
    ErrorCode(
        "idempotency_key_invalid",
        400,
        _NOT_STORED,
        "Idempotency-Key must be 16 to 255 printable ASCII characters",
    ),
    ErrorCode("unauthenticated", 401, _NOT_STORED, "a valid bearer token is required"),
    ErrorCode("forbidden", 403, _NOT_STORED, "this token's role may not do this"),
    # The player is frozen (sql/65_risk.sql answers it before claiming the key): not stored,
    # so the same request runs once the player is unfrozen.
    ErrorCode("account_frozen", 403, _NOT_STORED, "this account is frozen"),
    ErrorCode("not_found", 404, _NOT_STORED, "not found", sqlstate="SKN01"),
    ErrorCode("insufficient_funds", 409, _FINAL, "not enough funds", sqlstate=SQLSTATE_FINAL),
    ErrorCode("sold_out", 409, _FINAL, "sold out", sqlstate=SQLSTATE_FINAL),
    ErrorCode(
        "purchase_limit_reached", 409, _FINAL, "purchase limit reached", sqlstate=SQLSTATE_FINAL
    ),
    ErrorCode(
        "item_unavailable", 409, _FINAL, "the item is not on sale now", sqlstate=SQLSTATE_FINAL
    ),
    ErrorCode("price_changed", 409, _FINAL, "the price has changed", sqlstate=SQLSTATE_FINAL),
    ErrorCode(
        "balance_cap_exceeded",
        409,
        _FINAL,
        "the balance would exceed its maximum",
        sqlstate=SQLSTATE_FINAL,
    ),
    ErrorCode("not_enough_items", 409, _FINAL, "not enough items", sqlstate=SQLSTATE_FINAL),
    ErrorCode(
        "receipt_already_used",
        409,
        _FINAL,
        "this store transaction was already redeemed",
        sqlstate=SQLSTATE_FINAL,
    ),
    ErrorCode(
        "debt_outstanding",
        409,
        _FINAL,
        "the player owes a charged-back amount: a top-up repays it first",
        sqlstate=SQLSTATE_FINAL,
    ),
    ErrorCode("code_exhausted", 409, _FINAL, "this code has been used up", sqlstate=SQLSTATE_FINAL),
    ErrorCode(
        "code_already_redeemed",
        409,
        _FINAL,
        "this code was redeemed already",
        sqlstate=SQLSTATE_FINAL,
    ),
    # A limit of the catalog's risk policy (docs/api.md, "Risk"): stored with the key, so a
    # retry replays it even after the window frees up; details.retry_at says when a new
    # request may pass.
    ErrorCode(
        "limit_exceeded", 409, _FINAL, "a limit of the store's risk policy", sqlstate=SQLSTATE_FINAL
    ),
    ErrorCode(
        "hold_expired",
        409,
        _FINAL,
        "the hold has expired or ended: its units are back on sale",
        sqlstate=SQLSTATE_FINAL,
    ),
    ErrorCode(
        "hold_limit_reached",
        409,
        _FINAL,
        "too many units of this item held at once",
        sqlstate=SQLSTATE_FINAL,
    ),
    ErrorCode(
        "idempotency_key_in_use",
        409,
        _TRANSIENT,
        "a request with this Idempotency-Key is still being processed",
        sqlstate="SKI01",
    ),
    ErrorCode("precondition_failed", 412, _NOT_STORED, "the resource has changed: fetch it again"),
    ErrorCode("precondition_required", 428, _NOT_STORED, "this request needs an If-Match header"),
    ErrorCode("payload_too_large", 413, _NOT_STORED, "the request body is too large"),
    ErrorCode(
        "unsupported_media_type", 415, _NOT_STORED, "the request body must be application/json"
    ),
    ErrorCode("validation_failed", 422, _NOT_STORED, "the request is not valid", sqlstate="SKV01"),
    ErrorCode(
        "idempotency_key_reused",
        422,
        _NOT_STORED,
        "this Idempotency-Key was used for a different request",
        sqlstate="SKV02",
    ),
    ErrorCode(
        "receipt_invalid",
        422,
        _NOT_STORED,
        "the store's proof of purchase does not verify",
        sqlstate="SKV03",
    ),
    ErrorCode("rate_limited", 429, _TRANSIENT, "too many requests"),
    ErrorCode("internal_error", 500, _TRANSIENT, "internal error"),
    ErrorCode("unavailable", 503, _TRANSIENT, "the store is unavailable, try again shortly"),
    ErrorCode(
        "store_unavailable",
        503,
        _TRANSIENT,
        "the app store could not be reached, try again shortly",
    ),
)

BY_CODE: Mapping[str, ErrorCode] = MappingProxyType({entry.code: entry for entry in ERRORS})

# SQLSTATE -> the codes the SQL functions may raise with it.
SQLSTATE_CODES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        state: frozenset(e.code for e in ERRORS if e.sqlstate == state)
        for state in sorted({e.sqlstate for e in ERRORS if e.sqlstate is not None})
    }
)


def error_body(
    code: str, message: str, details: Mapping[str, Any], request_id: str
) -> dict[str, Any]:
    """The error envelope every error answer carries. Built here for every Python path; the SQL
    builds the same object for the rejections it stores (a test checks that both agree)."""
    return {
        "error": {
            "code": code,
            "message": message,
            "details": dict(details),
            "request_id": request_id,
        }
    }
