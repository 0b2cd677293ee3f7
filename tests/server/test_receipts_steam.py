"""Steam receipts against a local Steam Web API (ISteamMicroTxn's JSON): the order opened by the
server at the price the server names, approved in the overlay, finalized and credited once;
pending, cancelled, another player's order; Steam down gives 503, changes nothing, and the retry
succeeds once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask

from shopkeep_server import db, roles
from shopkeep_server.app import create_app
from support import Game, balances, make_config, make_game, new_key, post
from support import stores as s


@pytest.fixture
def steam() -> Iterator[s.FakeSteam]:
    fake = s.FakeSteam()
    with s.serving(fake.route) as server:
        fake.server = server
        yield fake


@pytest.fixture
def app(conn: psycopg.Connection, steam: s.FakeSteam) -> Flask:
    config = make_config(steam_api_url=steam.url, store_timeout=5.0)
    return create_app(config, database=db.SingleConnectionDatabase(conn, role=roles.APP_ROLE))


@pytest.fixture
def shop(conn: psycopg.Connection, client: Any) -> Game:
    game = make_game(conn, s.money_catalog())
    response = client.put(
        "/v1/admin/stores/steam",
        json={
            "app_id": s.STEAM_APP_ID,
            "publisher_key": s.FakeSteam.PUBLISHER_KEY,
            "prices": {"usd_5": {"currency": "USD", "amount": 499}},
        },
        headers=game.headers("studio", "studio-1"),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["secrets_set"] == ["publisher_key"]
    assert s.FakeSteam.PUBLISHER_KEY not in response.get_data(as_text=True)
    return game


def open_order(client: Any, game: Game, *, sub: str = "p1") -> str:
    response = client.post(
        "/v1/receipts/steam/orders",
        json={"product_id": "usd_5", "steam_id": "76561197960287930"},
        headers=game.headers("player", sub),
    )
    assert response.status_code == 201, response.get_json()
    order_id: str = response.get_json()["order_id"]
    return order_id


def redeem(
    client: Any, game: Game, order_id: str, *, sub: str = "p1", key: str | None = None
) -> Any:
    return post(
        client, "/v1/receipts", {"store": "steam", "order_id": order_id}, game, sub=sub, key=key
    )


def test_an_approved_order_is_finalized_and_credited_once(
    client: Any, shop: Game, steam: s.FakeSteam
) -> None:
    order_id = open_order(client, shop)
    opened = steam.orders[order_id]
    # Steam charges what the server said, never what a game would say.
    assert opened["items"] == [
        {"itemid": "1001", "qty": 1, "amount": 499, "vat": 0, "itemstatus": "Init"}
    ]
    assert opened["currency"] == "USD"
    steam.approve(order_id)
    key = new_key()
    response = redeem(client, shop, order_id, key=key)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["receipt"]["transaction_id"] == opened["transid"]
    assert steam.orders[order_id]["status"] == "Succeeded"
    assert balances(client, shop)["USD"] == 50_000
    assert redeem(client, shop, order_id, key=key).headers["Idempotent-Replayed"] == "true"
    used = redeem(client, shop, order_id)
    assert (used.status_code, used.get_json()["error"]["code"]) == (409, "receipt_already_used")
    assert balances(client, shop)["USD"] == 50_000


def test_a_pending_order_waits_for_the_overlay(
    client: Any, conn: psycopg.Connection, shop: Game, steam: s.FakeSteam
) -> None:
    order_id = open_order(client, shop)
    before = s.money_state(conn, shop.id)
    key = new_key()
    pending = redeem(client, shop, order_id, key=key)
    assert pending.status_code == 422
    assert pending.get_json()["error"]["details"] == {"reason": "pending"}
    assert s.money_state(conn, shop.id) == before
    steam.approve(order_id)
    assert redeem(client, shop, order_id, key=key).status_code == 201


def test_a_cancelled_order_and_another_player_s_order(
    client: Any, conn: psycopg.Connection, shop: Game, steam: s.FakeSteam
) -> None:
    cancelled = open_order(client, shop)
    steam.orders[cancelled]["status"] = "Failed"
    mine = open_order(client, shop, sub="p1")
    steam.approve(mine)
    before = s.money_state(conn, shop.id)
    refused = redeem(client, shop, cancelled)
    assert refused.get_json()["error"]["details"] == {"reason": "cancelled"}
    key = new_key()
    stolen = redeem(client, shop, mine, sub="p2", key=key)
    # Another player's order is refused as any cross-player reuse is: a final 409.
    assert stolen.status_code == 409
    assert stolen.get_json()["error"]["code"] == "receipt_already_used"
    assert stolen.get_json()["error"]["details"] == {
        "store": "steam",
        "transaction_id": steam.orders[mine]["transid"],
    }
    assert steam.orders[mine]["status"] == "Approved"  # not finalized for the wrong player
    asked = steam.server.requests  # type: ignore[union-attr]
    assert not [r for r in asked if "QueryTxn" in r.path and r.query.get("orderid") == mine]
    assert s.money_state(conn, shop.id) == before
    # Stored with the key: the same request replays it byte for byte.
    again = redeem(client, shop, mine, sub="p2", key=key)
    assert (again.status_code, again.data) == (409, stolen.data)
    assert again.headers["Idempotent-Replayed"] == "true"
    # The owner still redeems it, once.
    assert redeem(client, shop, mine, sub="p1").status_code == 201
    assert balances(client, shop, sub="p1")["USD"] == 50_000
    assert balances(client, shop, sub="p2")["USD"] == 0


def test_steam_down_gives_503_changes_nothing_and_the_retry_credits_once(
    client: Any, conn: psycopg.Connection, shop: Game, steam: s.FakeSteam
) -> None:
    order_id = open_order(client, shop)
    steam.approve(order_id)
    before = s.money_state(conn, shop.id)
    key = new_key()
    steam.server.down = True  # type: ignore[union-attr]
    down = redeem(client, shop, order_id, key=key)
    assert down.status_code == 503
    assert down.get_json()["error"]["code"] == "store_unavailable"
    assert "Retry-After" in down.headers
    assert s.money_state(conn, shop.id) == before
    steam.server.down = False  # type: ignore[union-attr]
    assert redeem(client, shop, order_id, key=key).status_code == 201
    assert redeem(client, shop, order_id, key=key).status_code == 201
    assert balances(client, shop)["USD"] == 50_000
    finalizations = [r for r in steam.server.requests if "FinalizeTxn" in r.path]  # type: ignore[union-attr]
    assert len(finalizations) == 1


def test_a_product_without_a_steam_price_cannot_be_ordered(client: Any, shop: Game) -> None:
    response = client.post(
        "/v1/receipts/steam/orders",
        json={"product_id": "coin_pack", "steam_id": "76561197960287930"},
        headers=shop.headers(),
    )
    assert response.status_code == 422
    assert "product_id" in response.get_json()["error"]["details"]
