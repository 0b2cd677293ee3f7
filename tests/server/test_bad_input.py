"""Bad input gets its code and changes nothing: balances, ledger, stock, before and after."""

from __future__ import annotations

import pytest

from shopkeep_server.store.audit import audit
from support import Game, grant, new_key, snapshot

MAX = 9_007_199_254_740_991

BAD_QUANTITIES = [-1, 0, 1.5, 1.0, "1", True, None, 1001, MAX + 1, 10**40, [], {}]
BAD_AMOUNTS = [-5, 0, 2.5, 10.0, "100", False, None, MAX + 1, 10**30, -(10**30), [1], {"a": 1}]


@pytest.fixture
def funded(client, game: Game) -> Game:
    grant(client, game, "p1", "COINS", 1000)
    grant(client, game, "p1", "GEMS", 10)
    return game


def _assert_unchanged(conn, game: Game, before: dict, response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == response.headers["X-Request-Id"]
    assert snapshot(conn, game.id) == before


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
def test_purchase_quantity(client, conn, funded: Game, quantity) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/purchases",
        json={"sku": "potion", "quantity": quantity},
        headers=funded.headers(**{"Idempotency-Key": new_key()}),
    )
    _assert_unchanged(conn, funded, before, response, 422, "validation_failed")
    assert "quantity" in response.get_json()["error"]["details"]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_grant_amount(client, conn, funded: Game, amount) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/players/p1/grants",
        json={"currency": "COINS", "amount": amount, "reason": "bad"},
        headers=funded.headers("service", "backend", **{"Idempotency-Key": new_key()}),
    )
    _assert_unchanged(conn, funded, before, response, 422, "validation_failed")
    assert "amount" in response.get_json()["error"]["details"]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_expected_price_amount(client, conn, funded: Game, amount) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/purchases",
        json={"sku": "potion", "expected_price": {"currency": "COINS", "amount": amount}},
        headers=funded.headers(**{"Idempotency-Key": new_key()}),
    )
    if type(amount) is int and amount == 0:
        # 0 is a valid price (free items); it is simply not this item's price.
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "price_changed"
        return
    _assert_unchanged(conn, funded, before, response, 422, "validation_failed")
    assert "expected_price.amount" in response.get_json()["error"]["details"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"sku": "potion", "colour": "red"}, "colour"),
        ({"sku": 12}, "sku"),
        ({"sku": "Potion!"}, "sku"),
        ({"sku": "potion", "quantity": 1, "currency": None}, "currency"),
        ({"sku": "a" * 65}, "sku"),
        ({"sku": ""}, "sku"),
        ({}, "sku"),
        ({"sku": "potion", "currency": "coins"}, "currency"),
        ({"sku": "potion", "expected_price": {"currency": "COINS"}}, "expected_price.amount"),
        ({"sku": "potion", "expected_price": 50}, "expected_price"),
    ],
)
def test_purchase_body_shapes(client, conn, funded: Game, body, field) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/purchases", json=body, headers=funded.headers(**{"Idempotency-Key": new_key()})
    )
    _assert_unchanged(conn, funded, before, response, 422, "validation_failed")
    assert field in response.get_json()["error"]["details"]


def test_body_that_is_not_an_object(client, conn, funded: Game) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/purchases", json=["potion"], headers=funded.headers(**{"Idempotency-Key": new_key()})
    )
    _assert_unchanged(conn, funded, before, response, 422, "validation_failed")


@pytest.mark.parametrize(
    "raw", [b'{"sku": "potion"', b"{'sku': 'potion'}", b'{"sku": NaN}', b'{"quantity": Infinity}']
)
def test_malformed_json(client, conn, funded: Game, raw: bytes) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/purchases",
        data=raw,
        content_type="application/json",
        headers=funded.headers(**{"Idempotency-Key": new_key()}),
    )
    _assert_unchanged(conn, funded, before, response, 400, "bad_request")


def test_non_json_body(client, conn, funded: Game) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/purchases",
        data="sku=potion",
        content_type="application/x-www-form-urlencoded",
        headers=funded.headers(**{"Idempotency-Key": new_key()}),
    )
    _assert_unchanged(conn, funded, before, response, 415, "unsupported_media_type")


def test_body_too_large(client, conn, funded: Game) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/purchases",
        json={"sku": "potion", "padding": "x" * 70_000},
        headers=funded.headers(**{"Idempotency-Key": new_key()}),
    )
    _assert_unchanged(conn, funded, before, response, 413, "payload_too_large")


@pytest.mark.parametrize("quantity", [0, -1, 1.0, "2", 1001])
def test_consume_quantity(client, conn, funded: Game, quantity) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/inventory/potion/consume",
        json={"quantity": quantity},
        headers=funded.headers(**{"Idempotency-Key": new_key()}),
    )
    _assert_unchanged(conn, funded, before, response, 422, "validation_failed")


@pytest.mark.parametrize("add", [0, -3, 2.0, "5", MAX + 1])
def test_restock_amount(client, conn, funded: Game, add) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/admin/stock/dragon_egg",
        json={"add": add},
        headers=funded.headers("studio", "designer", **{"Idempotency-Key": new_key()}),
    )
    _assert_unchanged(conn, funded, before, response, 422, "validation_failed")


def test_bad_pagination(client, funded: Game) -> None:
    for query in ["limit=0", "limit=201", "limit=ten", "cursor=abc", "cursor=-1"]:
        response = client.get(f"/v1/wallet/ledger?{query}", headers=funded.headers())
        assert response.status_code == 422, query
        assert response.get_json()["error"]["code"] == "validation_failed"


def test_bad_player_id_in_path(client, conn, funded: Game) -> None:
    before = snapshot(conn, funded.id)
    response = client.post(
        "/v1/players/bad%20id!/grants",
        json={"currency": "COINS", "amount": 1, "reason": "x"},
        headers=funded.headers("service", "backend", **{"Idempotency-Key": new_key()}),
    )
    _assert_unchanged(conn, funded, before, response, 422, "validation_failed")


def test_books_balance_after_bad_input(client, conn, funded: Game) -> None:
    for quantity in BAD_QUANTITIES:
        client.post(
            "/v1/purchases",
            json={"sku": "potion", "quantity": quantity},
            headers=funded.headers(**{"Idempotency-Key": new_key()}),
        )
    assert [v for v in audit(conn) if funded.id in v] == []
