"""Items only a segment sees (issue 15, an item's `segment`): left out of the catalog of a
player outside the segment, and refused to its purchase with the answer an sku the catalog does
not hold gets (404 not_found, nothing changed, the key left free), decided in the purchase's
transaction by the rule evaluator the offers price with (sk_hidden_items, sql/66_offers.sql)."""

from __future__ import annotations

from typing import Any

import psycopg

from support import Game, buy, coins_catalog, coins_item, grant, make_game, new_key, snapshot

VETERANS_ONLY = {
    **coins_catalog(
        coins_item("potion", 100),
        coins_item(
            "vet_pack",
            150,
            kind="bundle",
            per_player_limit=1,
            contents=[{"sku": "potion", "quantity": 3}],
            segment="veterans",
        ),
    ),
    "segments": [{"id": "veterans", "rule": "attr.level >= 10"}],
}


def _set_level(client: Any, game: Game, player: str, level: int) -> None:
    response = client.put(
        f"/v1/players/{player}/attributes",
        json={"attributes": {"level": level}},
        headers=game.headers("service", "backend"),
    )
    assert response.status_code == 200, response.get_json()


def _view(client: Any, game: Game, sub: str, role: str = "player") -> Any:
    response = client.get("/v1/catalog", headers=game.headers(role, sub))
    assert response.status_code == 200, response.get_json()
    return response


def _skus(view: Any) -> list[str]:
    return [item["sku"] for item in view.get_json()["items"]]


def _money(conn: psycopg.Connection, game: Game, player: str) -> tuple[int, list[Any], int]:
    """The player's COINS, its inventory and its purchases."""
    balance = conn.execute(
        "SELECT coalesce(sum(balance), 0) FROM wallets"
        " WHERE game_id = %s AND player_id = %s AND currency = 'COINS'",
        (game.id, player),
    ).fetchone()
    owned = conn.execute(
        "SELECT sku, quantity FROM inventories WHERE game_id = %s AND player_id = %s"
        " AND quantity > 0 ORDER BY sku",
        (game.id, player),
    ).fetchall()
    purchases = conn.execute(
        "SELECT count(*) FROM purchases WHERE game_id = %s AND player_id = %s", (game.id, player)
    ).fetchone()
    assert balance is not None and purchases is not None
    return int(balance[0]), [tuple(row) for row in owned], int(purchases[0])


def test_only_the_segment_sees_and_buys_the_item(client: Any, conn: psycopg.Connection) -> None:
    game = make_game(conn, VETERANS_ONLY)
    _set_level(client, game, "vet", 12)
    _set_level(client, game, "rookie", 3)
    for player in ("vet", "rookie"):
        grant(client, game, player, "COINS", 1000)

    vet_view, rookie_view = _view(client, game, "vet"), _view(client, game, "rookie")
    assert _skus(vet_view) == ["potion", "vet_pack"]
    assert _skus(rookie_view) == ["potion"]
    pack = vet_view.get_json()["items"][1]
    assert pack["segment"] == "veterans"
    assert pack["price_for_you"] == [{"currency": "COINS", "amount": 150, "offer_id": None}]
    # Each view has its own ETag; a service sees every item, at list prices.
    assert vet_view.headers["ETag"] != rookie_view.headers["ETag"]
    assert _skus(_view(client, game, "backend", role="service")) == ["potion", "vet_pack"]

    bought = buy(client, game, "vet_pack", sub="vet", expected_price=pack["prices"][0])
    assert bought.status_code == 201, bought.get_json()
    assert _money(conn, game, "vet") == (850, [("potion", 3)], 1)

    # The outsider gets what an sku the catalog does not hold gets, and nothing changes.
    before = snapshot(conn, game.id)
    key = new_key()
    refused = buy(client, game, "vet_pack", sub="rookie", key=key)
    unknown = buy(client, game, "no_such_pack", sub="rookie")
    assert (refused.status_code, unknown.status_code) == (404, 404)
    assert refused.get_json()["error"]["code"] == "not_found"
    assert refused.get_json()["error"]["message"] == "no item vet_pack in the live catalog"
    assert unknown.get_json()["error"]["message"] == "no item no_such_pack in the live catalog"
    assert _money(conn, game, "rookie") == (1000, [], 0)
    assert snapshot(conn, game.id) == before
    # The key stayed free (a 404 is not stored): once a veteran, the same key buys it.
    _set_level(client, game, "rookie", 10)
    assert _skus(_view(client, game, "rookie")) == ["potion", "vet_pack"]
    assert buy(client, game, "vet_pack", sub="rookie", key=key).status_code == 201
    assert _money(conn, game, "rookie") == (850, [("potion", 3)], 1)


def test_leaving_the_segment_after_the_catalog_is_a_refusal_not_a_charge(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, VETERANS_ONLY)
    _set_level(client, game, "vet", 12)
    grant(client, game, "vet", "COINS", 1000)
    view = _view(client, game, "vet")
    assert _skus(view) == ["potion", "vet_pack"]

    _set_level(client, game, "vet", 9)  # demoted between the catalog and the purchase
    shown = {"currency": "COINS", "amount": 150}
    refused = buy(client, game, "vet_pack", sub="vet", expected_price=shown)
    assert refused.status_code == 404
    assert refused.get_json()["error"]["code"] == "not_found"
    assert _money(conn, game, "vet") == (1000, [], 0)
    # Its catalog no longer holds the pack, under a new ETag.
    again = client.get(
        "/v1/catalog",
        headers=game.headers("player", "vet", **{"If-None-Match": view.headers["ETag"]}),
    )
    assert again.status_code == 200
    assert _skus(again) == ["potion"]


def test_a_first_week_item_is_seen_from_the_players_first_call(
    client: Any, conn: psycopg.Connection
) -> None:
    """A rule on first_seen holds for a player whose first call is the purchase itself."""
    game = make_game(
        conn,
        {
            **coins_catalog(
                coins_item("potion", 100),
                coins_item("welcome", 10, segment="new_players"),
                coins_item("veteran_badge", 10, segment="old_hands"),
            ),
            "segments": [
                {"id": "new_players", "rule": "first_seen within 7d"},
                {"id": "old_hands", "rule": "first_seen older_than 7d"},
            ],
        },
    )
    grant(client, game, "fresh", "COINS", 100)
    assert buy(client, game, "welcome", sub="fresh").status_code == 201
    assert buy(client, game, "veteran_badge", sub="fresh").status_code == 404
    assert _money(conn, game, "fresh") == (90, [("welcome", 1)], 1)
    assert _skus(_view(client, game, "newcomer")) == ["potion", "welcome"]
    # A week later (first_seen moved back), the welcome item is gone and the badge is there.
    conn.execute(
        "UPDATE player_profiles SET first_seen = now() - interval '8 days'"
        " WHERE game_id = %s AND player_id = 'fresh'",
        (game.id,),
    )
    assert _skus(_view(client, game, "fresh")) == ["potion", "veteran_badge"]
    assert buy(client, game, "welcome", sub="fresh").status_code == 404
    assert _money(conn, game, "fresh") == (90, [("welcome", 1)], 1)


def test_an_items_segment_must_be_one_of_the_catalogs(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, coins_catalog(coins_item("potion", 100)))
    draft = {
        **coins_catalog(coins_item("potion", 100), coins_item("pack", 10, segment="nobody")),
        "segments": [{"id": "veterans", "rule": "attr.level >= 10"}],
    }
    response = client.put(
        "/v1/admin/catalog/draft",
        json=draft,
        headers=game.headers("studio", "alice", **{"If-Match": "*"}),
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {
        "items.1.segment": ["not a segment of this catalog"]
    }
    draft["items"][1]["segment"] = "Not An Id"
    response = client.put(
        "/v1/admin/catalog/draft",
        json=draft,
        headers=game.headers("studio", "alice", **{"If-Match": "*"}),
    )
    assert response.status_code == 422
    assert list(response.get_json()["error"]["details"]) == ["items.1.segment"]


def test_an_outsider_cannot_hold_the_items_stock(client: Any, conn: psycopg.Connection) -> None:
    """A hold sets stock aside for a purchase: for an item only a segment sees, an outsider's
    hold is not_found too, and no unit leaves the stock."""
    game = make_game(
        conn,
        {
            **coins_catalog(coins_item("vip_egg", 50, stock=3, segment="vips")),
            "segments": [{"id": "vips", "rule": "attr.vip = true"}],
        },
    )
    response = client.put(
        "/v1/players/vip/attributes",
        json={"attributes": {"vip": True}},
        headers=game.headers("service", "backend"),
    )
    assert response.status_code == 200

    def hold(player: str) -> Any:
        return client.post(
            "/v1/holds",
            json={"sku": "vip_egg", "quantity": 2},
            headers=game.headers("player", player, **{"Idempotency-Key": new_key()}),
        )

    before = snapshot(conn, game.id)
    refused = hold("outsider")
    assert refused.status_code == 404
    assert refused.get_json()["error"]["message"] == "no item vip_egg in the live catalog"
    assert snapshot(conn, game.id) == before
    assert hold("vip").status_code == 201
    stock = client.get("/v1/stock", headers=game.headers("service", "backend")).get_json()
    assert stock == {"stock": [{"sku": "vip_egg", "remaining": 1}]}
    # Its stock is shown to the players who see it, and to no one else.
    for player, shown in (("vip", [{"sku": "vip_egg", "remaining": 1}]), ("outsider", [])):
        for query in ("", "?sku=vip_egg"):
            seen = client.get(f"/v1/stock{query}", headers=game.headers("player", player))
            assert seen.status_code == 200 and seen.get_json() == {"stock": shown}
