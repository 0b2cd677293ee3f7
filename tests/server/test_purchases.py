"""Purchases through the API: every kind of item, every rejection, exact balances."""

from __future__ import annotations

import datetime as dt

import psycopg

from support import (
    Game,
    balances,
    buy,
    coins_catalog,
    coins_item,
    grant,
    inventory,
    make_game,
    snapshot,
)


def test_buy_consumable_debits_grants_and_writes_ledger(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 500)
    response = buy(client, game, "potion", quantity=3)
    assert response.status_code == 201
    body = response.get_json()
    purchase = body["purchase"]
    assert purchase["sku"] == "potion"
    assert purchase["quantity"] == 3
    assert purchase["price"] == {"currency": "COINS", "amount": 150}
    assert purchase["unit_price"] == {"currency": "COINS", "amount": 50}
    assert purchase["status"] == "completed"
    assert purchase["catalog_version"] == 1
    assert body["granted"] == [{"sku": "potion", "quantity": 3}]
    assert {"currency": "COINS", "amount": 350} in body["balances"]
    assert balances(client, game) == {"COINS": 350, "GEMS": 0, "USD": 0}
    assert inventory(client, game) == {"potion": 3}
    ledger = client.get("/v1/wallet/ledger", headers=game.headers()).get_json()["entries"]
    assert [(e["currency"], e["delta"], e["balance_after"], e["kind"]) for e in ledger] == [
        ("COINS", -150, 350, "purchase"),
        ("COINS", 500, 500, "grant"),
    ]
    assert ledger[0]["reference"] == f"purchase:{purchase['id']}"


def test_purchase_is_listed_and_readable(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 100)
    purchase = buy(client, game, "potion").get_json()["purchase"]
    listed = client.get("/v1/purchases", headers=game.headers()).get_json()
    assert listed == {"purchases": [purchase], "next_cursor": None}
    one = client.get(f"/v1/purchases/{purchase['id']}", headers=game.headers())
    assert one.status_code == 200
    assert one.get_json() == {"purchase": purchase}


def test_micro_priced_item_in_sub_cent_currency(client, game: Game) -> None:
    grant(client, game, "p1", "USD", 1_000)  # $0.1000
    response = buy(client, game, "tip", quantity=2)
    assert response.status_code == 201
    assert response.get_json()["purchase"]["price"] == {"currency": "USD", "amount": 300}
    assert balances(client, game)["USD"] == 700


def test_bundle_grants_items_and_currency(client, game: Game) -> None:
    grant(client, game, "p1", "GEMS", 5)
    response = buy(client, game, "starter_pack")
    assert response.status_code == 201
    assert response.get_json()["granted"] == [
        {"sku": "potion", "quantity": 3},
        {"sku": "shield", "quantity": 1},
        {"currency": "COINS", "amount": 200},
    ]
    assert balances(client, game) == {"COINS": 200, "GEMS": 0, "USD": 0}
    assert inventory(client, game) == {"potion": 3, "shield": 1}


def test_item_with_several_prices_needs_a_currency(client, game: Game) -> None:
    grant(client, game, "p1", "GEMS", 10)
    missing = buy(client, game, "shield")
    assert missing.status_code == 422
    assert missing.get_json()["error"]["details"] == {
        "currency": ["required: this item has several prices"]
    }
    wrong = buy(client, game, "shield", currency="USD")
    assert wrong.status_code == 422
    assert wrong.get_json()["error"]["code"] == "validation_failed"
    paid_in_gems = buy(client, game, "shield", currency="GEMS")
    assert paid_in_gems.status_code == 201
    assert paid_in_gems.get_json()["purchase"]["price"] == {"currency": "GEMS", "amount": 2}
    assert balances(client, game)["GEMS"] == 8


def test_insufficient_funds_changes_nothing(client, conn: psycopg.Connection, game: Game) -> None:
    grant(client, game, "p1", "COINS", 299)
    before = snapshot(conn, game.id)
    response = buy(client, game, "sword")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_funds"
    assert error["details"] == {"currency": "COINS", "required": 300, "balance": 299}
    after = snapshot(conn, game.id)
    # Only the stored outcome is new.
    assert after.pop("keys") == [(before.pop("keys")[0][0] + 1,)]
    assert after == before


def test_durable_is_owned_once(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 1000)
    assert buy(client, game, "sword").status_code == 201
    again = buy(client, game, "sword")
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "purchase_limit_reached"
    two = buy(client, game, "magnet", quantity=2)
    assert two.status_code == 409
    assert two.get_json()["error"]["code"] == "purchase_limit_reached"
    assert balances(client, game)["COINS"] == 700
    assert inventory(client, game) == {"sword": 1}


def test_per_player_limit(client, game: Game) -> None:
    grant(client, game, "p1", "GEMS", 20)
    assert buy(client, game, "extra_life", quantity=4).status_code == 201
    over = buy(client, game, "extra_life", quantity=2)
    assert over.status_code == 409
    assert over.get_json()["error"]["details"] == {"sku": "extra_life", "limit": 5, "purchased": 4}
    assert buy(client, game, "extra_life", quantity=1).status_code == 201
    assert inventory(client, game) == {"extra_life": 5}
    assert balances(client, game)["GEMS"] == 10
    # The limit is per player: another player starts at zero.
    grant(client, game, "p2", "GEMS", 2)
    assert buy(client, game, "extra_life", sub="p2").status_code == 201


def test_price_changed_when_expected_price_differs(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 100)
    stale = buy(client, game, "potion", expected_price={"currency": "COINS", "amount": 40})
    assert stale.status_code == 409
    error = stale.get_json()["error"]
    assert error["code"] == "price_changed"
    assert error["details"]["current"] == {"currency": "COINS", "amount": 50}
    assert error["details"]["catalog_version"] == 1
    fresh = buy(client, game, "potion", expected_price={"currency": "COINS", "amount": 50})
    assert fresh.status_code == 201
    assert balances(client, game)["COINS"] == 50


def test_item_outside_its_window_is_unavailable(client, game: Game) -> None:
    grant(client, game, "p1", "GEMS", 10)
    response = buy(client, game, "phoenix_feather")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "item_unavailable"
    assert balances(client, game)["GEMS"] == 10


def test_window_that_has_closed(client, conn: psycopg.Connection) -> None:
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    window = {
        "available_from": past.isoformat(),
        "available_until": (past + dt.timedelta(days=1)).isoformat(),
    }
    game = make_game(conn, coins_catalog(coins_item("old", 1, **window)))
    grant(client, game, "p1", "COINS", 5)
    response = buy(client, game, "old")
    assert response.status_code == 409
    assert (
        response.get_json()["error"]["details"]["available_until"] == "2020-01-02T00:00:00.000000Z"
    )


def test_limited_stock_sells_out(client, conn: psycopg.Connection) -> None:
    game = make_game(conn, coins_catalog(coins_item("egg", 10, stock=3)))
    grant(client, game, "p1", "COINS", 100)
    assert buy(client, game, "egg", quantity=2).status_code == 201
    too_many = buy(client, game, "egg", quantity=2)
    assert too_many.status_code == 409
    assert too_many.get_json()["error"]["code"] == "sold_out"
    assert buy(client, game, "egg").status_code == 201
    last = buy(client, game, "egg")
    assert last.status_code == 409
    assert last.get_json()["error"]["code"] == "sold_out"
    assert balances(client, game)["COINS"] == 70
    stock = client.get("/v1/stock?sku=egg", headers=game.headers()).get_json()
    assert stock == {"stock": [{"sku": "egg", "remaining": 0}]}


def test_unknown_sku_is_not_found_and_not_stored(client, conn, game: Game) -> None:
    before = snapshot(conn, game.id)
    response = buy(client, game, "no_such_thing", key="k" * 20)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert snapshot(conn, game.id) == before


def test_bundle_over_balance_cap(client, conn: psycopg.Connection) -> None:
    game = make_game(
        conn,
        {
            "currencies": [
                {"code": "COINS", "name": "Coins", "scale": 0},
                {"code": "GEMS", "name": "Gems", "scale": 0, "max_balance": 15},
            ],
            "items": [
                {
                    "sku": "pouch",
                    "name": "Pouch",
                    "kind": "bundle",
                    "prices": [{"currency": "COINS", "amount": 10}],
                    "contents": [{"currency": "GEMS", "amount": 10}],
                }
            ],
        },
    )
    grant(client, game, "p1", "COINS", 100)
    assert buy(client, game, "pouch").status_code == 201
    capped = buy(client, game, "pouch")
    assert capped.status_code == 409
    assert capped.get_json()["error"]["code"] == "balance_cap_exceeded"
    assert balances(client, game) == {"COINS": 90, "GEMS": 10}


def test_free_item_writes_no_ledger_row(client, conn: psycopg.Connection) -> None:
    game = make_game(conn, coins_catalog(coins_item("gift", 0, per_player_limit=1)))
    assert buy(client, game, "gift").status_code == 201
    assert inventory(client, game) == {"gift": 1}
    ledger = client.get("/v1/wallet/ledger", headers=game.headers()).get_json()
    assert ledger == {"entries": [], "next_cursor": None}


def test_sold_out_is_said_before_not_enough_coins(client, conn: psycopg.Connection) -> None:
    game = make_game(conn, coins_catalog(coins_item("egg", 10, stock=1)))
    grant(client, game, "rich", "COINS", 10)
    assert buy(client, game, "egg", sub="rich").status_code == 201
    poor = buy(client, game, "egg", sub="poor")
    assert poor.status_code == 409
    assert poor.get_json()["error"]["code"] == "sold_out"
