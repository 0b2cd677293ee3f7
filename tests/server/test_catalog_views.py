"""The personal catalog's views, rendered once per (locale, the player's prices) and reused by
every player with the same prices: each reader still gets exactly its own view and ETag, and a
player's first view makes its profile row before it is priced (a rule on first_seen holds at
once), after which its views write nothing."""

from __future__ import annotations

from typing import Any

import psycopg

from support import Game, coins_item, make_game


def _catalog() -> dict[str, Any]:
    return {
        "currencies": [{"code": "COINS", "name": "Coins", "scale": 0}],
        "items": [
            coins_item("potion", 100, localized={"fr": {"name": "Potion magique"}}),
            coins_item("shield", 120),
        ],
        "segments": [
            {"id": "veterans", "rule": "attr.level >= 10"},
            {"id": "new_players", "rule": "first_seen within 7d"},
        ],
        "offers": [
            {"id": "vet-potion", "segment": "veterans", "sku": "potion", "discount_percent": 50},
            {"id": "new-shield", "segment": "new_players", "sku": "shield", "discount_percent": 25},
        ],
    }


def _view(client: Any, game: Game, player: str, **headers: str) -> tuple[dict[str, Any], str]:
    response = client.get("/v1/catalog", headers=game.headers("player", player, **headers))
    assert response.status_code == 200, response.get_json()
    return response.get_json(), response.headers["ETag"]


def _prices(body: dict[str, Any]) -> dict[str, tuple[int, str | None]]:
    return {
        item["sku"]: (item["price_for_you"][0]["amount"], item["price_for_you"][0]["offer_id"])
        for item in body["items"]
    }


def test_players_with_the_same_prices_share_a_view_and_others_keep_theirs(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, _catalog())
    for player, level in (("vet1", 12), ("vet2", 10), ("rookie", 3)):
        response = client.put(
            f"/v1/players/{player}/attributes",
            json={"attributes": {"level": level}},
            headers=game.headers("service", "backend"),
        )
        assert response.status_code == 200, response.get_json()

    views = {player: _view(client, game, player) for player in ("vet1", "rookie", "vet2")}
    veteran = {"potion": (50, "vet-potion"), "shield": (90, "new-shield")}
    assert _prices(views["vet1"][0]) == veteran
    assert _prices(views["vet2"][0]) == veteran
    assert _prices(views["rookie"][0]) == {"potion": (100, None), "shield": (90, "new-shield")}
    assert views["vet1"] == views["vet2"]  # the same prices: the same body and ETag
    assert views["rookie"][1] != views["vet1"][1]

    # In another locale each still gets its own prices, with the locale's text.
    french = {player: _view(client, game, player, **{"Accept-Language": "fr"}) for player in views}
    for player, (body, etag) in french.items():
        assert body["locale"] == "fr"
        assert body["items"][0]["name"] == "Potion magique"
        assert _prices(body) == _prices(views[player][0])
        assert etag != views[player][1]
    assert french["vet1"][1] == french["vet2"][1] != french["rookie"][1]

    # Each player's own ETag answers 304; the other view's does not.
    for player, other in (("vet2", "rookie"), ("rookie", "vet1")):
        own = client.get(
            "/v1/catalog",
            headers=game.headers("player", player, **{"If-None-Match": views[player][1]}),
        )
        assert own.status_code == 304
        foreign = client.get(
            "/v1/catalog",
            headers=game.headers("player", player, **{"If-None-Match": views[other][1]}),
        )
        assert foreign.status_code == 200
        assert _prices(foreign.get_json()) == _prices(views[player][0])

    # A demoted veteran leaves the shared view for the rookie's.
    client.put(
        "/v1/players/vet2/attributes",
        json={"attributes": {"level": 1}},
        headers=game.headers("service", "backend"),
    )
    assert _view(client, game, "vet2") == views["rookie"]


def test_a_first_view_is_priced_as_a_new_player_and_later_views_write_nothing(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, _catalog())

    def profile() -> tuple[Any, ...] | None:
        return conn.execute(
            "SELECT first_seen, updated_at, xmin::text FROM player_profiles"
            " WHERE game_id = %s AND player_id = 'newcomer'",
            (game.id,),
        ).fetchone()

    assert profile() is None
    body, _ = _view(client, game, "newcomer")
    assert _prices(body)["shield"] == (90, "new-shield")
    made = profile()
    assert made is not None and made[0] is not None
    for _ in range(3):
        body, _ = _view(client, game, "newcomer")
        assert _prices(body)["shield"] == (90, "new-shield")
    assert profile() == made  # the same row version: not written again
