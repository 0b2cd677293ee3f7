"""The studio backend's operations: grants, refunds, consumption and reads of any player."""

from __future__ import annotations

from support import Game, balances, buy, grant, inventory, new_key, post, snapshot


def _service(game: Game) -> dict[str, str]:
    return game.headers("service", "backend")


def test_grant_currency(client, game: Game) -> None:
    response = post(
        client,
        "/v1/players/p9/grants",
        {"currency": "GEMS", "amount": 25, "reason": "daily reward"},
        game,
        role="service",
        sub="backend",
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["grant"]["player_id"] == "p9"
    assert body["grant"]["reason"] == "daily reward"
    assert body["grant"]["granted"] == [{"currency": "GEMS", "amount": 25}]
    assert body["balances"] == [
        {"currency": "COINS", "amount": 0},
        {"currency": "GEMS", "amount": 25},
        {"currency": "USD", "amount": 0},
    ]
    assert body["inventory"] == []
    ledger = client.get("/v1/players/p9/ledger", headers=_service(game)).get_json()
    assert [(e["delta"], e["kind"], e["reference"]) for e in ledger["entries"]] == [
        (25, "grant", f"grant:{body['grant']['id']}")
    ]


def test_grant_item_and_bundle(client, game: Game) -> None:
    item = post(
        client,
        "/v1/players/p1/grants",
        {"sku": "potion", "quantity": 2, "reason": "compensation"},
        game,
        role="service",
    )
    assert item.status_code == 201
    assert item.get_json()["inventory"] == [{"sku": "potion", "quantity": 2}]
    bundle = post(
        client,
        "/v1/players/p1/grants",
        {"sku": "starter_pack", "quantity": 1, "reason": "welcome"},
        game,
        role="service",
    )
    assert bundle.status_code == 201
    assert inventory(client, game) == {"potion": 5, "shield": 1}
    assert balances(client, game)["COINS"] == 200


def test_grant_errors(client, conn, game: Game) -> None:
    before = snapshot(conn, game.id)
    unknown_currency = post(
        client,
        "/v1/players/p1/grants",
        {"currency": "EUR", "amount": 5, "reason": "x"},
        game,
        role="service",
    )
    assert unknown_currency.status_code == 422
    assert unknown_currency.get_json()["error"]["details"] == {
        "currency": ["EUR is not a currency of the live catalog"]
    }
    unknown_sku = post(
        client,
        "/v1/players/p1/grants",
        {"sku": "ghost", "quantity": 1, "reason": "x"},
        game,
        role="service",
    )
    assert unknown_sku.status_code == 404
    both = post(
        client,
        "/v1/players/p1/grants",
        {"currency": "COINS", "amount": 5, "sku": "potion", "quantity": 1, "reason": "x"},
        game,
        role="service",
    )
    assert both.status_code == 422
    half = post(
        client, "/v1/players/p1/grants", {"currency": "COINS", "reason": "x"}, game, role="service"
    )
    assert half.status_code == 422
    assert half.get_json()["error"]["details"] == {"amount": ["Missing data for required field."]}
    no_reason = post(
        client, "/v1/players/p1/grants", {"currency": "COINS", "amount": 5}, game, role="service"
    )
    assert no_reason.status_code == 422
    assert snapshot(conn, game.id) == before


def test_grant_over_the_cap(client, game: Game) -> None:
    grant(client, game, "p1", "GEMS", 100_000)
    over = post(
        client,
        "/v1/players/p1/grants",
        {"currency": "GEMS", "amount": 1, "reason": "x"},
        game,
        role="service",
    )
    assert over.status_code == 409
    error = over.get_json()["error"]
    assert error["code"] == "balance_cap_exceeded"
    assert error["details"] == {
        "currency": "GEMS",
        "balance": 100_000,
        "amount": 1,
        "max_balance": 100_000,
    }


def test_grant_of_owned_durable(client, game: Game) -> None:
    body = {"sku": "sword", "quantity": 1, "reason": "x"}
    assert post(client, "/v1/players/p1/grants", body, game, role="service").status_code == 201
    again = post(client, "/v1/players/p1/grants", body, game, role="service")
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "purchase_limit_reached"


def test_refund_returns_price_and_takes_back_items(client, game: Game) -> None:
    grant(client, game, "p1", "GEMS", 5)
    purchase = buy(client, game, "starter_pack").get_json()["purchase"]
    assert balances(client, game) == {"COINS": 200, "GEMS": 0, "USD": 0}
    response = post(
        client,
        f"/v1/purchases/{purchase['id']}/refund",
        {"reason": "accidental purchase"},
        game,
        role="service",
    )
    assert response.status_code == 200
    refunded = response.get_json()["purchase"]
    assert refunded["status"] == "refunded"
    assert refunded["refund_reason"] == "accidental purchase"
    assert refunded["refunded_at"] is not None
    assert balances(client, game) == {"COINS": 0, "GEMS": 5, "USD": 0}
    assert inventory(client, game) == {}
    # The per-player limit frees up again, and refunding twice changes nothing.
    assert buy(client, game, "starter_pack").status_code == 201
    twice = post(
        client, f"/v1/purchases/{purchase['id']}/refund", {"reason": "again"}, game, role="service"
    )
    assert twice.status_code == 200
    assert twice.get_json()["purchase"]["refund_reason"] == "accidental purchase"
    assert balances(client, game)["GEMS"] == 0


def test_refund_when_items_were_used(client, conn, game: Game) -> None:
    grant(client, game, "p1", "COINS", 100)
    purchase = buy(client, game, "potion", quantity=2).get_json()["purchase"]
    used = post(client, "/v1/inventory/potion/consume", {"quantity": 1}, game)
    assert used.status_code == 200
    assert used.get_json() == {"sku": "potion", "quantity": 1}
    before = snapshot(conn, game.id)
    response = post(
        client, f"/v1/purchases/{purchase['id']}/refund", {"reason": "x"}, game, role="service"
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "not_enough_items"
    after = snapshot(conn, game.id)
    after.pop("keys"), before.pop("keys")
    assert after == before


def test_refund_unknown_purchase(client, game: Game) -> None:
    response = post(
        client,
        "/v1/purchases/00000000-0000-4000-8000-000000000000/refund",
        {"reason": "x"},
        game,
        role="service",
    )
    assert response.status_code == 404
    bad_id = post(client, "/v1/purchases/not-a-uuid/refund", {"reason": "x"}, game, role="service")
    assert bad_id.status_code == 404


def test_consume(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 450)
    buy(client, game, "potion", quantity=3)
    key = new_key()
    first = post(client, "/v1/inventory/potion/consume", {"quantity": 2}, game, key=key)
    assert first.get_json() == {"sku": "potion", "quantity": 1}
    replay = post(client, "/v1/inventory/potion/consume", {"quantity": 2}, game, key=key)
    assert replay.data == first.data
    too_many = post(client, "/v1/inventory/potion/consume", {"quantity": 2}, game)
    assert too_many.status_code == 409
    assert too_many.get_json()["error"]["details"] == {"sku": "potion", "required": 2, "owned": 1}
    assert buy(client, game, "sword").status_code == 201
    durable = post(client, "/v1/inventory/sword/consume", {"quantity": 1}, game)
    assert durable.status_code == 422
    unknown = post(client, "/v1/inventory/ghost/consume", {"quantity": 1}, game)
    assert unknown.status_code == 404
    assert inventory(client, game) == {"potion": 1, "sword": 1}


def test_service_reads_any_player(client, game: Game) -> None:
    grant(client, game, "p7", "COINS", 100)
    buy(client, game, "potion", sub="p7")
    wallet = client.get("/v1/players/p7/wallet", headers=_service(game)).get_json()
    assert wallet["balances"][0] == {"currency": "COINS", "amount": 50}
    stuff = client.get("/v1/players/p7/inventory", headers=_service(game)).get_json()
    assert stuff == {"items": [{"sku": "potion", "quantity": 1}]}
    purchases = client.get("/v1/players/p7/purchases", headers=_service(game)).get_json()
    assert [p["sku"] for p in purchases["purchases"]] == ["potion"]
    one = client.get(
        f"/v1/purchases/{purchases['purchases'][0]['id']}", headers=_service(game)
    ).get_json()
    assert one["purchase"]["player_id"] == "p7"


def test_ledger_and_purchases_paginate(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 1000)
    for _ in range(5):
        buy(client, game, "potion")
    seen: list[int] = []
    cursor = None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/v1/wallet/ledger?{query}", headers=game.headers()).get_json()
        seen += [e["balance_after"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [750, 800, 850, 900, 950, 1000]
    first = client.get("/v1/purchases?limit=3", headers=game.headers()).get_json()
    rest = client.get(
        f"/v1/purchases?limit=3&cursor={first['next_cursor']}", headers=game.headers()
    ).get_json()
    assert len(first["purchases"]) == 3 and len(rest["purchases"]) == 2
    assert rest["next_cursor"] is None
    ids = [p["id"] for p in first["purchases"] + rest["purchases"]]
    assert len(set(ids)) == 5
