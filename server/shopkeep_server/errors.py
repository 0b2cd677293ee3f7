"""The server's errors, derived from the contract table (``contract.py``): one exception class
per error code, its HTTP status and category, what the idempotency layer stores, and how the
SQL functions' errors are read.

The store raises these as domain errors; every path renders them with
:func:`contract.error_body` (``{"error": {"code", "message", "details", "request_id"}}``) and
the status from the table.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import psycopg

from .contract import BY_CODE, ERRORS, SQLSTATE_CODES, ErrorCategory, ErrorCode
from .contract import error_body as error_body  # the one envelope, re-exported for the callers

log = logging.getLogger(__name__)


class StoreError(Exception):
    """Base of every error the API answers with; ``code`` picks the row of the table."""

    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = BY_CODE["internal_error"].message

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
        return BY_CODE[self.code].status

    @property
    def category(self) -> ErrorCategory:
        return BY_CODE[self.code].category


def _error_class(entry: ErrorCode) -> type[StoreError]:
    name = "".join(part.capitalize() for part in entry.code.split("_"))
    return type(name, (StoreError,), {"code": entry.code, "default_message": entry.message})


# One class per code of the table, in its order.
_CLASSES: dict[str, type[StoreError]] = {entry.code: _error_class(entry) for entry in ERRORS}

# The names Python code raises and catches.
BadRequest = _CLASSES["bad_request"]
IdempotencyKeyMissing = _CLASSES["idempotency_key_missing"]
IdempotencyKeyInvalid = _CLASSES["idempotency_key_invalid"]
Unauthenticated = _CLASSES["unauthenticated"]
Forbidden = _CLASSES["forbidden"]
NotFound = _CLASSES["not_found"]
InsufficientFunds = _CLASSES["insufficient_funds"]
SoldOut = _CLASSES["sold_out"]
PurchaseLimitReached = _CLASSES["purchase_limit_reached"]
ItemUnavailable = _CLASSES["item_unavailable"]
PriceChanged = _CLASSES["price_changed"]
BalanceCapExceeded = _CLASSES["balance_cap_exceeded"]
NotEnoughItems = _CLASSES["not_enough_items"]
ReceiptAlreadyUsed = _CLASSES["receipt_already_used"]
DebtOutstanding = _CLASSES["debt_outstanding"]
CodeExhausted = _CLASSES["code_exhausted"]
CodeAlreadyRedeemed = _CLASSES["code_already_redeemed"]
HoldExpired = _CLASSES["hold_expired"]
HoldLimitReached = _CLASSES["hold_limit_reached"]
IdempotencyKeyInUse = _CLASSES["idempotency_key_in_use"]
PreconditionFailed = _CLASSES["precondition_failed"]
PreconditionRequired = _CLASSES["precondition_required"]
PayloadTooLarge = _CLASSES["payload_too_large"]
UnsupportedMediaType = _CLASSES["unsupported_media_type"]
ValidationFailed = _CLASSES["validation_failed"]
IdempotencyKeyReused = _CLASSES["idempotency_key_reused"]
ReceiptInvalid = _CLASSES["receipt_invalid"]
RateLimited = _CLASSES["rate_limited"]
InternalError = _CLASSES["internal_error"]
Unavailable = _CLASSES["unavailable"]
StoreUnavailable = _CLASSES["store_unavailable"]

# code -> (HTTP status, class), in the table's order.
ERROR_TABLE: dict[str, tuple[int, type[StoreError]]] = {
    entry.code: (entry.status, _CLASSES[entry.code]) for entry in ERRORS
}

# The rejections stored with the idempotency key (with the 2xx outcomes): the FINAL category.
STORED_REJECTIONS = frozenset(e.code for e in ERRORS if e.category is ErrorCategory.FINAL)


def from_database(exc: psycopg.Error) -> StoreError | None:
    """The domain error a SQL function raised, or None for any other database error.

    The SQL functions raise the code as MESSAGE, the human message as HINT and a JSON object
    as DETAIL, with the code's SQLSTATE from the table.
    """
    raisable = SQLSTATE_CODES.get(exc.sqlstate or "")
    if raisable is None:
        return None
    diag = exc.diag
    code = diag.message_primary or ""
    if code not in raisable:
        # A code the table does not give this SQLSTATE: a bug in the SQL, never shown.
        log.error("SQL raised %r with SQLSTATE %s, which the contract does not", code, exc.sqlstate)
        return InternalError()
    try:
        details = json.loads(diag.message_detail or "{}")
    except ValueError:
        details = {}
    error = _CLASSES[code](diag.message_hint or None, details=details)
    if error.category is ErrorCategory.TRANSIENT:
        error.headers["Retry-After"] = "1"
    return error
