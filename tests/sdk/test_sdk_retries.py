"""Retries: one key per call, backoff with jitter, Retry-After, and what never retries."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable

import httpx
import pytest

from shopkeep import (
    ConnectionError,
    IdempotencyConflict,
    InsufficientFunds,
    NotFound,
    RateLimited,
    ShopkeepError,
    StoreClient,
    Timeout,
)
from support.sdk_fakes import FakeStore, error_response, faulty


def test_dropped_response_after_commit_is_retried_with_the_same_key(
    store: FakeStore, make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    client = make_client(faulty(store, ["drop"]))

    result = client.purchase("sword")

    keys = store.purchase_keys
    assert len(keys) == 2
    assert keys[0] == keys[1] == result.idempotency_key
    assert len(keys[0]) == 36 and uuid.UUID(keys[0]).version == 4
    # The first attempt committed; the second got the stored outcome, so one charge only.
    assert len(store.purchases) == 1
    assert result.replayed is True
    assert result.balance("COINS") == 700
    assert store.balances["COINS"] == 700
    assert sleeps == [0.5]


def test_each_call_gets_its_own_key(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    client = make_client(store)
    first = client.purchase("potion")
    second = client.purchase("potion")
    assert first.idempotency_key != second.idempotency_key
    assert first.replayed is False and second.replayed is False
    assert len(store.purchases) == 2
    assert store.balances["COINS"] == 900


def test_a_callers_key_is_used_and_replays(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    client = make_client(store)
    key = "order-2026-11-21-000042"
    first = client.purchase("potion", idempotency_key=key)
    again = client.purchase("potion", idempotency_key=key)
    assert store.purchase_keys == [key, key]
    assert first.purchase.id == again.purchase.id
    assert (first.replayed, again.replayed) == (False, True)
    assert store.balances["COINS"] == 950


@pytest.mark.parametrize("bad", ["short", "x" * 256, "tab\tinside-the-key-1234", "ключ" * 8])
def test_invalid_caller_keys_are_refused_locally(
    bad: str, store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    client = make_client(store)
    with pytest.raises(ValueError):
        client.purchase("potion", idempotency_key=bad)
    assert store.requests == []


def test_503_retry_after_is_honoured(
    make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    store = FakeStore()
    responses = [error_response(503, "unavailable", headers={"Retry-After": "7"})]

    def handler(request: httpx.Request) -> httpx.Response:
        return responses.pop(0) if responses else store(request)

    client = make_client(handler, jitter=lambda ceiling: 0.0)
    result = client.purchase("sword")
    assert sleeps == [7.0]
    assert result.replayed is False
    assert store.balances["COINS"] == 700


def test_retry_after_is_a_floor_under_the_backoff(
    make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    store = FakeStore()
    responses = [
        error_response(429, "rate_limited", headers={"Retry-After": "0.25"}),
        error_response(429, "rate_limited", headers={"Retry-After": "0.25"}),
        error_response(503, "unavailable", headers={"Retry-After": "3"}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return responses.pop(0) if responses else store(request)

    client = make_client(handler, jitter=lambda ceiling: ceiling)
    client.wallet()
    # Backoff ceilings 0.5, 1.0, 2.0; Retry-After wins only where it is longer.
    assert sleeps == [0.5, 1.0, 3.0]


def test_exponential_backoff_goes_through_the_jitter(
    make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    ceilings: list[float] = []

    def jitter(ceiling: float) -> float:
        ceilings.append(ceiling)
        return ceiling / 4

    store = FakeStore()
    faults = faulty(store, ["refuse", "refuse", "refuse"])
    client = make_client(faults, jitter=jitter, backoff=1.0, max_backoff=3.0)
    wallet = client.wallet()
    assert wallet.balance("COINS") == 1000
    assert ceilings == [1.0, 2.0, 3.0]
    assert sleeps == [0.25, 0.5, 0.75]


def test_seeded_random_jitter_is_deterministic(sleeps: list[float]) -> None:
    def run(seed: int) -> list[float]:
        recorded: list[float] = []
        store = FakeStore()
        with StoreClient(
            "http://shop.test",
            "t",
            transport=httpx.MockTransport(faulty(store, ["refuse", "refuse"])),
            jitter=random.Random(seed),
            sleep=recorded.append,
        ) as client:
            client.wallet()
        return recorded

    first, again = run(7), run(7)
    assert first == again
    assert len(first) == 2
    # Equal jitter: between half and all of each ceiling (0.5, then 1.0).
    assert 0.25 <= first[0] <= 0.5 and 0.5 <= first[1] <= 1.0


def test_a_very_long_retry_after_is_not_waited_for(
    make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    response = error_response(429, "rate_limited", headers={"Retry-After": "3600"})
    client = make_client(lambda r: response)
    with pytest.raises(RateLimited) as caught:
        client.wallet()
    assert caught.value.retry_after == 3600.0
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (409, "insufficient_funds"),
        (409, "sold_out"),
        (409, "purchase_limit_reached"),
        (409, "item_unavailable"),
        (409, "price_changed"),
        (409, "balance_cap_exceeded"),
        (409, "not_enough_items"),
        (400, "bad_request"),
        (401, "unauthenticated"),
        (403, "forbidden"),
        (404, "not_found"),
        (422, "validation_failed"),
        (422, "idempotency_key_reused"),
    ],
)
def test_4xx_rejections_are_not_retried(
    status: int, code: str, make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error_response(status, code)

    client = make_client(handler, max_retries=5)
    with pytest.raises(ShopkeepError) as caught:
        client.purchase("sword")
    assert caught.value.code == code
    assert len(calls) == 1
    assert sleeps == []


def test_a_stored_rejection_is_not_retried_even_after_a_top_up(
    make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    store = FakeStore(coins=100)
    client = make_client(store)
    with pytest.raises(InsufficientFunds) as caught:
        client.purchase("sword", idempotency_key="fixed-key-0000000001")
    assert caught.value.details == {"currency": "COINS", "required": 300, "balance": 100}
    store.balances["COINS"] = 1000
    # Same key: the stored refusal is replayed (API.md); a new attempt needs a new key.
    with pytest.raises(InsufficientFunds):
        client.purchase("sword", idempotency_key="fixed-key-0000000001")
    assert client.purchase("sword").balance("COINS") == 700
    assert sleeps == []


def test_timeouts_are_retried_within_the_budget_then_raise(
    store: FakeStore, make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    attempts: list[tuple[object, ...]] = []
    client = make_client(
        faulty(store, ["timeout"] * 10), max_retries=3, on_request=lambda *a: attempts.append(a)
    )
    with pytest.raises(ConnectionError) as caught:
        client.purchase("sword")
    error = caught.value
    assert isinstance(error, Timeout)
    assert error.status is None
    assert len(attempts) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert store.purchases == []
    assert error.idempotency_key is not None and len(error.idempotency_key) == 36


def test_every_attempt_of_a_failing_call_carries_one_key(
    make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Idempotency-Key"])
        raise httpx.ReadTimeout("timed out", request=request)

    client = make_client(handler, max_retries=3)
    with pytest.raises(Timeout) as caught:
        client.consume("potion", 1)
    assert len(seen) == 4
    assert len(set(seen)) == 1
    assert caught.value.idempotency_key == seen[0]
    assert sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    "response",
    [
        error_response(500, "internal_error"),
        error_response(503, "unavailable", headers={"Retry-After": "1"}),
        error_response(429, "rate_limited", headers={"Retry-After": "1"}),
        error_response(409, "idempotency_key_in_use", headers={"Retry-After": "1"}),
        httpx.Response(502, text="bad gateway"),
    ],
    ids=["500", "503", "429", "in_use", "502"],
)
def test_transient_statuses_are_retried(
    response: httpx.Response, store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    responses = [response]

    def handler(request: httpx.Request) -> httpx.Response:
        if responses:
            store.requests.append(request)
            return responses.pop(0)
        return store(request)

    client = make_client(handler)
    result = client.purchase("potion")
    assert result.balance("COINS") == 950
    keys = store.purchase_keys
    assert len(keys) == 2 and keys[0] == keys[1]


def test_connection_errors_on_gets_are_retried(
    store: FakeStore, make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    client = make_client(faulty(store, ["refuse", "drop"]))
    assert client.inventory().items == ()
    assert sleeps == [0.5, 1.0]


def test_max_retries_zero_sends_once(
    store: FakeStore, make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    client = make_client(faulty(store, ["refuse"]), max_retries=0)
    with pytest.raises(ConnectionError):
        client.wallet()
    assert sleeps == []


def test_on_request_is_called_once_per_attempt(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    calls: list[tuple[str, str, int | None, float, ShopkeepError | None]] = []
    responses = [error_response(503, "unavailable", headers={"Retry-After": "1"})]

    def handler(request: httpx.Request) -> httpx.Response:
        return responses.pop(0) if responses else store(request)

    client = make_client(faulty(handler, ["refuse"]), on_request=lambda *args: calls.append(args))
    client.purchase("potion")
    with pytest.raises(NotFound):
        client.purchase("no_such_item")

    assert [(m, p, s) for m, p, s, _, _ in calls] == [
        ("POST", "/v1/purchases", None),
        ("POST", "/v1/purchases", 503),
        ("POST", "/v1/purchases", 201),
        ("POST", "/v1/purchases", 404),
    ]
    errors = [e for *_, e in calls]
    assert isinstance(errors[0], ConnectionError)
    assert errors[1] is not None and errors[1].code == "unavailable"
    assert errors[2] is None
    assert isinstance(errors[3], NotFound)
    assert all(isinstance(elapsed, float) and elapsed >= 0 for *_, elapsed, _ in calls)


def test_a_failing_hook_never_fails_the_call(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    def hook(*args: object) -> None:
        raise RuntimeError("telemetry is down")

    client = make_client(store, on_request=hook)
    assert client.purchase("potion").balance("COINS") == 950


def test_a_token_callable_is_asked_on_every_attempt(store: FakeStore, sleeps: list[float]) -> None:
    tokens = iter(["old", "new"])
    with StoreClient(
        "http://shop.test",
        lambda: next(tokens),
        transport=httpx.MockTransport(faulty(store, ["refuse"])),
        sleep=sleeps.append,
    ) as client:
        client.wallet()
    assert [r.headers["Authorization"] for r in store.requests] == ["Bearer new"]


def test_idempotency_key_reused_is_raised_as_a_conflict(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    client = make_client(store)
    client.purchase("potion", idempotency_key="same-key-for-two-bodies")
    with pytest.raises(IdempotencyConflict) as caught:
        client.purchase("sword", idempotency_key="same-key-for-two-bodies")
    assert caught.value.status == 422
    assert caught.value.code == "idempotency_key_reused"
