"""The error tree: every API code raises its class; unknown codes fall back by status."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

import shopkeep
from shopkeep import StoreClient
from shopkeep._core import is_unsettled
from shopkeep.errors import (
    ERROR_CODES,
    ERROR_TABLE,
    AuthenticationError,
    BadRequest,
    BalanceCapExceeded,
    BusinessRejection,
    CodeAlreadyRedeemed,
    CodeExhausted,
    ConnectionError,
    DebtOutstanding,
    ErrorCategory,
    HoldExpired,
    HoldLimitReached,
    IdempotencyConflict,
    InsufficientFunds,
    ItemUnavailable,
    NotEnoughItems,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PreconditionFailed,
    PreconditionRequired,
    PriceChanged,
    PurchaseLimitReached,
    RateLimited,
    ReceiptAlreadyUsed,
    ReceiptInvalid,
    ServerError,
    ServiceUnavailable,
    ShopkeepError,
    SoldOut,
    StoreUnavailable,
    Timeout,
    UnsupportedMediaType,
    ValidationError,
    category_for,
    class_for,
)
from support.sdk_fakes import error_response

# API.md's error table, code -> (status, class).
TABLE: dict[str, tuple[int, type[ShopkeepError]]] = {
    "bad_request": (400, BadRequest),
    "idempotency_key_missing": (400, BadRequest),
    "idempotency_key_invalid": (400, BadRequest),
    "unauthenticated": (401, AuthenticationError),
    "forbidden": (403, PermissionDenied),
    "not_found": (404, NotFound),
    "insufficient_funds": (409, InsufficientFunds),
    "sold_out": (409, SoldOut),
    "purchase_limit_reached": (409, PurchaseLimitReached),
    "item_unavailable": (409, ItemUnavailable),
    "price_changed": (409, PriceChanged),
    "balance_cap_exceeded": (409, BalanceCapExceeded),
    "not_enough_items": (409, NotEnoughItems),
    "receipt_already_used": (409, ReceiptAlreadyUsed),
    "debt_outstanding": (409, DebtOutstanding),
    "receipt_invalid": (422, ReceiptInvalid),
    "code_exhausted": (409, CodeExhausted),
    "code_already_redeemed": (409, CodeAlreadyRedeemed),
    "hold_expired": (409, HoldExpired),
    "hold_limit_reached": (409, HoldLimitReached),
    "idempotency_key_in_use": (409, IdempotencyConflict),
    "precondition_failed": (412, PreconditionFailed),
    "precondition_required": (428, PreconditionRequired),
    "payload_too_large": (413, PayloadTooLarge),
    "unsupported_media_type": (415, UnsupportedMediaType),
    "validation_failed": (422, ValidationError),
    "idempotency_key_reused": (422, IdempotencyConflict),
    "rate_limited": (429, RateLimited),
    "internal_error": (500, ServerError),
    "unavailable": (503, ServiceUnavailable),
    "store_unavailable": (503, StoreUnavailable),
}


def test_error_codes_are_exactly_the_api_table() -> None:
    assert set(ERROR_CODES) == set(TABLE)
    assert {code: cls for code, (_, cls) in TABLE.items()} == ERROR_CODES
    assert shopkeep.ERROR_CODES is ERROR_CODES
    assert {code: (e.status, e.error_class) for code, e in ERROR_TABLE.items()} == TABLE


@pytest.mark.parametrize(
    ("status", "code", "category"),
    [
        (409, "insufficient_funds", ErrorCategory.FINAL),
        (409, "idempotency_key_in_use", ErrorCategory.TRANSIENT),
        (422, "idempotency_key_reused", ErrorCategory.NOT_STORED),
        (500, "internal_error", ErrorCategory.TRANSIENT),
        # Codes newer than this SDK: by status.
        (409, "too_shiny", ErrorCategory.FINAL),
        (404, "gone", ErrorCategory.NOT_STORED),
        (418, "teapot", ErrorCategory.NOT_STORED),
        (429, "slow_down", ErrorCategory.TRANSIENT),
        (502, None, ErrorCategory.TRANSIENT),
        (None, None, ErrorCategory.TRANSIENT),
        (200, None, None),
    ],
)
def test_category_by_code_then_by_status(
    status: int | None, code: str | None, category: ErrorCategory | None
) -> None:
    assert category_for(code, status) is category
    error = class_for(code, status)("m", status=status, code=code)
    assert error.category is category
    assert is_unsettled(error) is (category is ErrorCategory.TRANSIENT)


@pytest.mark.parametrize("code", sorted(TABLE))
def test_every_code_raises_its_class(
    code: str, make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    status, cls = TABLE[code]
    details = {"currency": "COINS", "required": 300, "balance": 10}

    def handler(request: httpx.Request) -> httpx.Response:
        return error_response(status, code, "canned message", details, request_id="req-42")

    client = make_client(handler, max_retries=0)
    with pytest.raises(ShopkeepError) as caught:
        client.purchase("sword", idempotency_key="k" * 20)
    error = caught.value
    assert type(error) is cls
    assert error.status == status
    assert error.code == code
    assert error.message == "canned message"
    assert error.details == details
    assert error.request_id == "req-42"
    assert error.idempotency_key == "k" * 20
    assert str(error) == f"{code}: canned message (status={status}, request_id=req-42)"
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "brand_new", BadRequest),
        (401, "token_revoked", AuthenticationError),
        (403, "banned", PermissionDenied),
        (404, "gone", NotFound),
        (409, "too_shiny", BusinessRejection),
        (412, "stale", PreconditionFailed),
        (418, "teapot", BadRequest),
        (422, "odd", ValidationError),
        (429, "slow_down", RateLimited),
        (500, "oops", ServerError),
        (502, "bad_gateway", ServerError),
        (503, "later", ServiceUnavailable),
    ],
)
def test_unknown_code_falls_back_by_status(
    status: int, code: str, cls: type[ShopkeepError], make_client: Callable[..., StoreClient]
) -> None:
    client = make_client(lambda r: error_response(status, code), max_retries=0)
    with pytest.raises(ShopkeepError) as caught:
        client.wallet()
    assert type(caught.value) is cls
    assert caught.value.code == code
    assert caught.value.status == status


def test_a_body_that_is_not_an_api_error_still_maps_by_status(
    make_client: Callable[..., StoreClient],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            502, text="<html>Bad Gateway</html>", headers={"X-Request-Id": "proxy-1"}
        )

    client = make_client(handler, max_retries=0)
    with pytest.raises(ServerError) as caught:
        client.wallet()
    assert caught.value.code is None
    assert caught.value.status == 502
    assert caught.value.request_id == "proxy-1"
    assert caught.value.message == "HTTP 502: <html>Bad Gateway</html>"


def test_network_errors_have_no_status(make_client: Callable[..., StoreClient]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = make_client(refuse, max_retries=0)
    with pytest.raises(ConnectionError) as caught:
        client.wallet()
    assert caught.value.status is None
    assert caught.value.code is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_hierarchy() -> None:
    for cls in (InsufficientFunds, SoldOut, PurchaseLimitReached, ItemUnavailable, PriceChanged):
        assert issubclass(cls, BusinessRejection)
    assert issubclass(BalanceCapExceeded, BusinessRejection)
    assert issubclass(NotEnoughItems, BusinessRejection)
    assert issubclass(Timeout, ConnectionError)
    assert issubclass(ServiceUnavailable, ServerError)
    assert issubclass(PreconditionRequired, PreconditionFailed)
    assert not issubclass(IdempotencyConflict, BusinessRejection)
    for cls in set(ERROR_CODES.values()) | {ConnectionError, Timeout, BusinessRejection}:
        assert issubclass(cls, ShopkeepError)
        assert cls.__doc__


def test_price_changed_exposes_the_current_price(make_client: Callable[..., StoreClient]) -> None:
    details = {
        "expected": {"currency": "COINS", "amount": 250},
        "current": {"currency": "COINS", "amount": 300},
        "catalog_version": 4,
    }
    client = make_client(lambda r: error_response(409, "price_changed", "moved", details))
    with pytest.raises(PriceChanged) as caught:
        client.purchase("sword", expected_price=shopkeep.Amount("COINS", 250))
    assert caught.value.current_price == shopkeep.Amount("COINS", 300)
    assert caught.value.expected_price == shopkeep.Amount("COINS", 250)
    assert caught.value.catalog_version == 4


def test_validation_error_lists_fields(make_client: Callable[..., StoreClient]) -> None:
    details = {"quantity": ["must be between 1 and 1000"]}
    client = make_client(lambda r: error_response(422, "validation_failed", "invalid", details))
    with pytest.raises(ValidationError) as caught:
        client.purchase("sword", quantity=0)
    assert caught.value.fields == {"quantity": ["must be between 1 and 1000"]}


def test_rate_limited_carries_retry_after(make_client: Callable[..., StoreClient]) -> None:
    response = error_response(429, "rate_limited", headers={"Retry-After": "2"})
    client = make_client(lambda r: response, max_retries=0)
    with pytest.raises(RateLimited) as caught:
        client.wallet()
    assert caught.value.retry_after == 2.0
