"""The one error table: every error code of the API, its HTTP status and its exception class.

The store raises these as domain errors; the API layer renders any of them as
``{"error": {"code", "message", "details", "request_id"}}`` with the status from the table.
The SDK keeps the mirror of this table and a test checks that both agree.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import psycopg


class StoreError(Exception):
    """Base of every error the API answers with; ``code`` picks the row of the table."""

    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return ERROR_TABLE[self.code][0]


def _error(code: str, message: str) -> type[StoreError]:
    name = "".join(part.capitalize() for part in code.split("_"))
    return type(name, (StoreError,), {"code": code, "default_message": message})


BadRequest = _error("bad_request", "the request body is not valid JSON")
IdempotencyKeyMissing = _error("idempotency_key_missing", "this request needs an Idempotency-Key")
IdempotencyKeyInvalid = _error(
    "idempotency_key_invalid", "Idempotency-Key must be 16 to 255 printable ASCII characters"
)
Unauthenticated = _error("unauthenticated", "a valid bearer token is required")
Forbidden = _error("forbidden", "this token's role may not do this")
NotFound = _error("not_found", "not found")
InsufficientFunds = _error("insufficient_funds", "not enough funds")
SoldOut = _error("sold_out", "sold out")
PurchaseLimitReached = _error("purchase_limit_reached", "purchase limit reached")
ItemUnavailable = _error("item_unavailable", "the item is not on sale now")
PriceChanged = _error("price_changed", "the price has changed")
BalanceCapExceeded = _error("balance_cap_exceeded", "the balance would exceed its maximum")
NotEnoughItems = _error("not_enough_items", "not enough items")
IdempotencyKeyInUse = _error(
    "idempotency_key_in_use", "a request with this Idempotency-Key is still being processed"
)
PreconditionFailed = _error("precondition_failed", "the resource has changed: fetch it again")
PreconditionRequired = _error("precondition_required", "this request needs an If-Match header")
PayloadTooLarge = _error("payload_too_large", "the request body is too large")
UnsupportedMediaType = _error("unsupported_media_type", "the request body must be application/json")
ValidationFailed = _error("validation_failed", "the request is not valid")
IdempotencyKeyReused = _error(
    "idempotency_key_reused", "this Idempotency-Key was used for a different request"
)
RateLimited = _error("rate_limited", "too many requests")
InternalError = _error("internal_error", "internal error")
Unavailable = _error("unavailable", "the store is unavailable, try again shortly")

# code -> (HTTP status, class). API.md's error table, in its order.
ERROR_TABLE: dict[str, tuple[int, type[StoreError]]] = {
    cls.code: (status, cls)
    for status, cls in [
        (400, BadRequest),
        (400, IdempotencyKeyMissing),
        (400, IdempotencyKeyInvalid),
        (401, Unauthenticated),
        (403, Forbidden),
        (404, NotFound),
        (409, InsufficientFunds),
        (409, SoldOut),
        (409, PurchaseLimitReached),
        (409, ItemUnavailable),
        (409, PriceChanged),
        (409, BalanceCapExceeded),
        (409, NotEnoughItems),
        (409, IdempotencyKeyInUse),
        (412, PreconditionFailed),
        (428, PreconditionRequired),
        (413, PayloadTooLarge),
        (415, UnsupportedMediaType),
        (422, ValidationFailed),
        (422, IdempotencyKeyReused),
        (429, RateLimited),
        (500, InternalError),
        (503, Unavailable),
    ]
}

# Outcomes the idempotency layer stores with the key (API.md: 2xx and the 409 rejections,
# except "in use", which says nothing final about the request).
STORED_REJECTIONS = frozenset(
    code for code, (status, _) in ERROR_TABLE.items() if status == 409
) - {"idempotency_key_in_use"}

# SQLSTATEs raised by the SQL functions (shopkeep_server/sql/00_errors.sql says which is which).
_SQLSTATE_CODES = {"SKB01", "SKN01", "SKV01", "SKV02", "SKI01"}


def from_database(exc: psycopg.Error) -> StoreError | None:
    """The domain error a SQL function raised, or None for any other database error."""
    if exc.sqlstate not in _SQLSTATE_CODES:
        return None
    diag = exc.diag
    code = diag.message_primary or "internal_error"
    cls = ERROR_TABLE.get(code, (500, InternalError))[1]
    try:
        details = json.loads(diag.message_detail or "{}")
    except ValueError:
        details = {}
    error = cls(diag.message_hint or None, details=details)
    if cls is IdempotencyKeyInUse:
        error.headers["Retry-After"] = "1"
    return error


def error_body(code: str, message: str, details: dict[str, Any], request_id: str) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details, "request_id": request_id}
    }
