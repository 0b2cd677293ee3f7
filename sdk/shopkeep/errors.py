"""Errors raised by the Shopkeep SDK, one class per kind of outcome a game reacts to.

Every API error body ``{"error": {"code", "message", "details", "request_id"}}`` becomes an
instance of the class that :data:`ERROR_CODES` maps its ``code`` to; a code this SDK does not
know yet falls back to a class chosen by the HTTP status. Network failures have ``status None``.

Hierarchy::

    ShopkeepError
    ├── ConnectionError             no response: refused, reset, DNS, ... (status None)
    │   └── Timeout                 connect / read / write / pool timeout
    ├── BadRequest                  400 bad_request, idempotency_key_missing / _invalid
    │   ├── PayloadTooLarge         413 payload_too_large
    │   └── UnsupportedMediaType    415 unsupported_media_type
    ├── AuthenticationError         401 unauthenticated
    ├── PermissionDenied            403 forbidden
    │   └── AccountFrozenError      403 account_frozen
    ├── NotFound                    404 not_found
    ├── BusinessRejection           409: final refusals, stored with the idempotency key
    │   ├── InsufficientFunds       insufficient_funds
    │   ├── SoldOut                 sold_out
    │   ├── PurchaseLimitReached    purchase_limit_reached
    │   ├── ItemUnavailable         item_unavailable
    │   ├── PriceChanged            price_changed (.current_price)
    │   ├── BalanceCapExceeded      balance_cap_exceeded
    │   ├── NotEnoughItems          not_enough_items
    │   ├── CodeExhausted           code_exhausted
    │   ├── CodeAlreadyRedeemed     code_already_redeemed
    │   ├── ReceiptAlreadyUsed      receipt_already_used
    │   ├── DebtOutstanding         debt_outstanding
    │   ├── LimitExceededError      limit_exceeded (.retry_at, .rule)
    │   ├── HoldExpired             hold_expired
    │   └── HoldLimitReached        hold_limit_reached
    ├── IdempotencyConflict         409 idempotency_key_in_use, 422 idempotency_key_reused
    ├── PreconditionFailed          412 precondition_failed
    │   └── PreconditionRequired    428 precondition_required
    ├── ValidationError             422 validation_failed (.fields)
    ├── ReceiptInvalid              422 receipt_invalid (.reason)
    ├── RateLimited                 429 rate_limited (.retry_after)
    └── ServerError                 500 internal_error, other 5xx
        └── ServiceUnavailable      503 unavailable (.retry_after)
            └── StoreUnavailable    503 store_unavailable: the app store, not Shopkeep

Every code also has a category (:class:`ErrorCategory`, ``error.category``) that says what the
answer means for the request and its idempotency key: a :class:`BusinessRejection` is final
(retrying the same key gets the same answer, so the SDK never retries it; a new attempt needs a
new call), a transient answer may be re-sent with the same key (the SDK's retries do), and any
other error needs the request fixed first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Amount

__all__ = [
    "ERROR_CODES",
    "ERROR_TABLE",
    "AccountFrozenError",
    "AuthenticationError",
    "BadRequest",
    "BalanceCapExceeded",
    "BusinessRejection",
    "CodeAlreadyRedeemed",
    "CodeExhausted",
    "ConnectionError",
    "DebtOutstanding",
    "ErrorCategory",
    "ErrorEntry",
    "HoldExpired",
    "HoldLimitReached",
    "IdempotencyConflict",
    "InsufficientFunds",
    "ItemUnavailable",
    "LimitExceededError",
    "NotEnoughItems",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PreconditionFailed",
    "PreconditionRequired",
    "PriceChanged",
    "PurchaseLimitReached",
    "RateLimited",
    "ReceiptAlreadyUsed",
    "ReceiptInvalid",
    "ServerError",
    "ServiceUnavailable",
    "ShopkeepError",
    "SoldOut",
    "StoreUnavailable",
    "Timeout",
    "UnsupportedMediaType",
    "ValidationError",
    "category_for",
    "error_from_body",
]


class ErrorCategory(enum.Enum):
    """What an error answer says about the request and its idempotency key.

    ``FINAL``: a business rejection (409), stored with the key; re-sending the same key replays
    it, even after its cause is gone. A new attempt needs a new key (a new call).
    ``TRANSIENT``: the outcome is open (no response, 5xx) or not reached yet (429, the key in
    flight); re-sending the same request with the same key is safe and settles it.
    ``NOT_STORED``: the request itself is wrong; nothing was stored, so fix it before sending.

    The server's contract table (``shopkeep_server.contract.ErrorCategory``) is the original;
    a test checks that this mirror is equal to it.
    """

    FINAL = "final"
    TRANSIENT = "transient"
    NOT_STORED = "not_stored"


class ShopkeepError(Exception):
    """Base of every error the SDK raises for a failed call."""

    status: int | None
    code: str | None
    message: str
    details: dict[str, Any]
    request_id: str | None
    retry_after: float | None
    idempotency_key: str | None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = dict(details or {})
        self.request_id = request_id
        self.retry_after = retry_after
        # Lets a game that gave up after a network failure re-send the very same request later.
        self.idempotency_key = idempotency_key

    @property
    def category(self) -> ErrorCategory | None:
        """What this error means for the request's idempotency key (None for a 2xx or 3xx
        answer whose body could not be read)."""
        return category_for(self.code, self.status)

    def __str__(self) -> str:
        head = f"{self.code}: {self.message}" if self.code else self.message
        extra = [f"status={self.status}"] if self.status is not None else []
        if self.request_id:
            extra.append(f"request_id={self.request_id}")
        return f"{head} ({', '.join(extra)})" if extra else head

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


# Shadows the builtin on purpose: `shopkeep.ConnectionError` is the name callers expect.
class ConnectionError(ShopkeepError):
    """The request got no response: connection refused or reset, DNS failure, and so on."""


class Timeout(ConnectionError):
    """The request timed out (connect, read, write or waiting for a pooled connection)."""


class BadRequest(ShopkeepError):
    """The server could not read the request (400); a bug in the caller or the SDK."""


class PayloadTooLarge(BadRequest):
    """The request body is larger than the server accepts (413)."""


class UnsupportedMediaType(BadRequest):
    """The request body is not JSON (415)."""


class AuthenticationError(ShopkeepError):
    """The token is missing, malformed, expired, or signed with the wrong key (401)."""


class PermissionDenied(ShopkeepError):
    """The token's role may not make this call (403)."""


class AccountFrozenError(PermissionDenied):
    """The player is frozen by the studio: purchases, consumes, grants, code and receipt
    redemptions and holds are refused, reads still work. Not stored with the idempotency
    key: the same call runs once unfrozen."""


class NotFound(ShopkeepError):
    """No such item, purchase or player in this game (404)."""


class BusinessRejection(ShopkeepError):
    """The store refused the operation for a business reason (409); final for its key."""


class InsufficientFunds(BusinessRejection):
    """The player's balance does not cover the price."""


class SoldOut(BusinessRejection):
    """The limited item has no stock left."""


class PurchaseLimitReached(BusinessRejection):
    """The player already bought as many as the item allows (durables: one)."""


class ItemUnavailable(BusinessRejection):
    """The item is outside its sale window (``available_from`` / ``available_until``)."""


class PriceChanged(BusinessRejection):
    """The price is no longer the ``expected_price`` the player saw."""

    @property
    def current_price(self) -> Amount | None:
        """The unit price the store charges now, from ``details["current"]``."""
        return _amount(self.details.get("current"))

    @property
    def expected_price(self) -> Amount | None:
        """The unit price the request expected, from ``details["expected"]``."""
        return _amount(self.details.get("expected"))

    @property
    def catalog_version(self) -> int | None:
        """The live catalog version that holds :attr:`current_price`, when the server says."""
        version = self.details.get("catalog_version")
        return version if isinstance(version, int) else None


class BalanceCapExceeded(BusinessRejection):
    """A credit would take a balance above its currency's ``max_balance``."""


class NotEnoughItems(BusinessRejection):
    """The player does not own enough of the item (consume, or a refund of a spent grant)."""


class ReceiptAlreadyUsed(BusinessRejection):
    """The store transaction was redeemed already, by another player or under another key."""


class DebtOutstanding(BusinessRejection):
    """The player owes what a store refund or chargeback could not take back; a top-up repays
    it first, and purchases wait until it is repaid."""


class CodeExhausted(BusinessRejection):
    """The promo code's budget of redemptions is used up."""


class CodeAlreadyRedeemed(BusinessRejection):
    """This player redeemed the promo code before (a code counts once per player)."""


class LimitExceededError(BusinessRejection):
    """A limit of the studio's risk policy stopped the call: a spend or earn limit over a
    rolling window, a trust tier, a refund cooldown or a tripped mint breaker."""

    @property
    def rule(self) -> str | None:
        """Which rule: ``spend_limit``, ``earn_limit``, ``tier``, ``refund_limit`` or
        ``mint_breaker``."""
        rule = self.details.get("rule")
        return rule if isinstance(rule, str) else None

    @property
    def retry_at(self) -> dt.datetime | None:
        """When the window frees up enough for this call (a new call: this one's key keeps
        its answer); None when waiting does not help (a tripped breaker, a tier the service
        must change, a price above the limit itself)."""
        value = self.details.get("retry_at")
        if not isinstance(value, str):
            return None
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None

    @property
    def window_seconds(self) -> int | None:
        value = self.details.get("window_seconds")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class HoldExpired(BusinessRejection):
    """The hold named by a purchase expired, was released or was used: its units are back on
    sale (``details["status"]`` says which). Buy without it, or place a new hold."""


class HoldLimitReached(BusinessRejection):
    """The player already holds as many units of the item as one player may at once."""


class IdempotencyConflict(ShopkeepError):
    """The idempotency key is in flight (409, retried) or was used for another request (422)."""


class PreconditionFailed(ShopkeepError):
    """``If-Match`` no longer matches (412): someone else changed the resource."""


class PreconditionRequired(PreconditionFailed):
    """The call needs ``If-Match`` (428)."""


class ValidationError(ShopkeepError):
    """The request is well formed but its values are not valid (422)."""

    @property
    def fields(self) -> dict[str, list[str]]:
        """Field path -> messages, as the server's ``details`` gives them."""
        return {
            str(k): [str(m) for m in v] if isinstance(v, list) else [str(v)]
            for k, v in self.details.items()
        }


class ReceiptInvalid(ShopkeepError):
    """The store's proof of purchase does not verify (422): nothing was credited."""

    @property
    def reason(self) -> str | None:
        """Why, from ``details["reason"]`` (``signature``, ``bundle_id``, ``environment``,
        ``unknown_product``, ``revoked``, ``pending``, ``cancelled``, ...)."""
        reason = self.details.get("reason")
        return reason if isinstance(reason, str) else None


class RateLimited(ShopkeepError):
    """Too many requests (429); ``retry_after`` says how many seconds to wait."""


class ServerError(ShopkeepError):
    """The server failed (5xx); a keyed request may be re-sent safely."""


class ServiceUnavailable(ServerError):
    """The server is overloaded or starting (503); ``retry_after`` says when to come back."""


class StoreUnavailable(ServiceUnavailable):
    """The app store behind a receipt could not be reached (503); nothing was credited, and
    re-sending the same request with the same key settles it."""


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorEntry:
    """One row of :data:`ERROR_TABLE`."""

    status: int
    category: ErrorCategory
    error_class: type[ShopkeepError]


_FINAL, _TRANSIENT, _NOT_STORED = (
    ErrorCategory.FINAL,
    ErrorCategory.TRANSIENT,
    ErrorCategory.NOT_STORED,
)

# The server's contract table (shopkeep_server/contract.py), mirrored: this SDK never imports
# the server. Code -> status, category and the class raised, in API.md's order; a server-side
# test checks that codes, statuses and categories equal the server's, row by row.
ERROR_TABLE: dict[str, ErrorEntry] = {
    "bad_request": ErrorEntry(400, _NOT_STORED, BadRequest),
    "idempotency_key_missing": ErrorEntry(400, _NOT_STORED, BadRequest),
    "idempotency_key_invalid": ErrorEntry(400, _NOT_STORED, BadRequest),
    "unauthenticated": ErrorEntry(401, _NOT_STORED, AuthenticationError),
    "forbidden": ErrorEntry(403, _NOT_STORED, PermissionDenied),
    "account_frozen": ErrorEntry(403, _NOT_STORED, AccountFrozenError),
    "not_found": ErrorEntry(404, _NOT_STORED, NotFound),
    "insufficient_funds": ErrorEntry(409, _FINAL, InsufficientFunds),
    "sold_out": ErrorEntry(409, _FINAL, SoldOut),
    "purchase_limit_reached": ErrorEntry(409, _FINAL, PurchaseLimitReached),
    "item_unavailable": ErrorEntry(409, _FINAL, ItemUnavailable),
    "price_changed": ErrorEntry(409, _FINAL, PriceChanged),
    "balance_cap_exceeded": ErrorEntry(409, _FINAL, BalanceCapExceeded),
    "not_enough_items": ErrorEntry(409, _FINAL, NotEnoughItems),
    "receipt_already_used": ErrorEntry(409, _FINAL, ReceiptAlreadyUsed),
    "debt_outstanding": ErrorEntry(409, _FINAL, DebtOutstanding),
    "code_exhausted": ErrorEntry(409, _FINAL, CodeExhausted),
    "code_already_redeemed": ErrorEntry(409, _FINAL, CodeAlreadyRedeemed),
    "limit_exceeded": ErrorEntry(409, _FINAL, LimitExceededError),
    "hold_expired": ErrorEntry(409, _FINAL, HoldExpired),
    "hold_limit_reached": ErrorEntry(409, _FINAL, HoldLimitReached),
    "idempotency_key_in_use": ErrorEntry(409, _TRANSIENT, IdempotencyConflict),
    "precondition_failed": ErrorEntry(412, _NOT_STORED, PreconditionFailed),
    "precondition_required": ErrorEntry(428, _NOT_STORED, PreconditionRequired),
    "payload_too_large": ErrorEntry(413, _NOT_STORED, PayloadTooLarge),
    "unsupported_media_type": ErrorEntry(415, _NOT_STORED, UnsupportedMediaType),
    "validation_failed": ErrorEntry(422, _NOT_STORED, ValidationError),
    "idempotency_key_reused": ErrorEntry(422, _NOT_STORED, IdempotencyConflict),
    "receipt_invalid": ErrorEntry(422, _NOT_STORED, ReceiptInvalid),
    "rate_limited": ErrorEntry(429, _TRANSIENT, RateLimited),
    "internal_error": ErrorEntry(500, _TRANSIENT, ServerError),
    "unavailable": ErrorEntry(503, _TRANSIENT, ServiceUnavailable),
    "store_unavailable": ErrorEntry(503, _TRANSIENT, StoreUnavailable),
}

# Code -> class, as ERROR_TABLE says.
ERROR_CODES: dict[str, type[ShopkeepError]] = {
    code: entry.error_class for code, entry in ERROR_TABLE.items()
}

_BY_STATUS: dict[int, type[ShopkeepError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    # A 409 code newer than this SDK is most likely a new kind of business refusal.
    409: BusinessRejection,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
    428: PreconditionRequired,
    429: RateLimited,
    503: ServiceUnavailable,
}


def class_for(code: str | None, status: int | None) -> type[ShopkeepError]:
    """The class for an error ``code``, or by ``status`` when the code is unknown."""
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    if status is None:
        return ConnectionError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    if 400 <= status < 500:
        return BadRequest
    return ShopkeepError


def category_for(code: str | None, status: int | None) -> ErrorCategory | None:
    """The category of an error ``code``, or by ``status`` when the code is unknown: no
    response, 429 and 5xx leave the outcome open; another 409 is most likely a new business
    rejection; any other 4xx is a refusal of the request itself."""
    if code is not None and code in ERROR_TABLE:
        return ERROR_TABLE[code].category
    if status is None or status == 429 or status >= 500:
        return ErrorCategory.TRANSIENT
    if status == 409:
        return ErrorCategory.FINAL
    if 400 <= status < 500:
        return ErrorCategory.NOT_STORED
    return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; the HTTP-date form is ignored (never sent)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative: meaningless, ignore it
        return None
    return seconds


def error_from_body(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
    idempotency_key: str | None = None,
) -> ShopkeepError:
    """Build the error for an HTTP error response from its status and (raw or parsed) body.

    A body that is not the API's error shape (a proxy's HTML page, say) still gives an error of
    the status's class, with the start of the body as its message.
    """
    parsed: Any = body
    if isinstance(body, bytes | str):
        try:
            parsed = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            parsed = None
    error = parsed.get("error") if isinstance(parsed, Mapping) else None
    code: str | None = None
    details: Mapping[str, Any] = {}
    if isinstance(error, Mapping):
        raw_code = error.get("code")
        code = raw_code if isinstance(raw_code, str) else None
        message = str(error.get("message") or code or f"HTTP {status}")
        raw_details = error.get("details")
        details = raw_details if isinstance(raw_details, Mapping) else {}
        request_id = str(error.get("request_id") or request_id or "") or None
    else:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        message = f"HTTP {status}" + (f": {text.strip()[:200]}" if text.strip() else "")
    cls = class_for(code, status)
    return cls(
        message,
        status=status,
        code=code,
        details=details,
        request_id=request_id,
        retry_after=retry_after,
        idempotency_key=idempotency_key,
    )


def _amount(value: Any) -> Amount | None:
    from .models import Amount

    if isinstance(value, Mapping):
        try:
            return Amount.from_wire(value)
        except (KeyError, TypeError, ValueError):
            return None
    return None
