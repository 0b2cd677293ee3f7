"""One home for when a player was first seen (migration 0014, sql/22_players.sql): a player is
one player_profiles row, made by sk_player_seen whichever call meets it first, and the trust
tiers (GET .../risk's first_seen_at) and the segment rules (`first_seen`, GET .../attributes)
read the same column."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from support import Game, coins_item, grant, make_game, post

HOUR = 3600

CATALOG: dict[str, Any] = {
    "currencies": [{"code": "COINS", "name": "Coins", "scale": 0}],
    "items": [coins_item("potion", 50), coins_item("egg", 20, stock=5)],
    "segments": [{"id": "young", "rule": "first_seen within 1h"}],
    "offers": [
        {
            "id": "welcome",
            "segment": "young",
            "sku": "potion",
            "price": {"currency": "COINS", "amount": 10},
        }
    ],
    "risk": {
        "tiers": [{"name": "new", "while_younger_than_seconds": HOUR, "limited_items": False}]
    },
}


def _service_get(client: Any, game: Game, path: str) -> dict[str, Any]:
    answer = client.get(path, headers=game.headers("service", "backend"))
    assert answer.status_code == 200, answer.get_json()
    found: dict[str, Any] = answer.get_json()
    return found


def _potion_price(client: Any, game: Game, player: str) -> int:
    view = client.get("/v1/catalog", headers=game.headers("player", player)).get_json()
    potion = next(i for i in view["items"] if i["sku"] == "potion")
    return int(potion["price_for_you"][0]["amount"])


def _first_seen(client: Any, game: Game, player: str) -> str:
    """The one instant, as both APIs show it (they must agree)."""
    risk = _service_get(client, game, f"/v1/players/{player}/risk")
    attributes = _service_get(client, game, f"/v1/players/{player}/attributes")
    assert risk["first_seen_at"] == attributes["first_seen"]
    return str(risk["first_seen_at"])


@pytest.mark.parametrize("first_contact", ["grant", "attributes", "catalog view", "freeze"])
def test_tiers_and_segments_go_by_one_first_seen(
    conn: psycopg.Connection, client: Any, first_contact: str
) -> None:
    game = make_game(conn, CATALOG)
    if first_contact == "grant":
        grant(client, game, "p1", "COINS", 500)
    elif first_contact == "attributes":
        answer = client.put(
            "/v1/players/p1/attributes",
            json={"attributes": {"level": 1}},
            headers=game.headers("service", "backend"),
        )
        assert answer.status_code == 200
    elif first_contact == "catalog view":
        assert _potion_price(client, game, "p1") == 10
    else:
        frozen = post(client, "/v1/players/p1/freeze", {"reason": "x"}, game, role="service")
        unfrozen = post(client, "/v1/players/p1/unfreeze", {"reason": "x"}, game, role="service")
        assert (frozen.status_code, unfrozen.status_code) == (200, 200)
    now = conn.execute("SELECT sk_ts(now())").fetchone()
    assert now is not None
    assert _first_seen(client, game, "p1") == now[0]
    if first_contact != "grant":
        grant(client, game, "p1", "COINS", 500)
    assert _first_seen(client, game, "p1") == now[0]  # a later operation does not move it
    assert conn.execute(
        "SELECT count(*) FROM player_profiles WHERE game_id = %s AND player_id = 'p1'", (game.id,)
    ).fetchone() == (1,)

    # Young: the segment's welcome price, and the tier keeps the limited egg from it.
    assert _potion_price(client, game, "p1") == 10
    egg = post(client, "/v1/purchases", {"sku": "egg"}, game)
    assert (egg.status_code, egg.get_json()["error"]["details"]["rule"]) == (409, "tier")

    # Two hours older in the one row: past both at once.
    conn.execute(
        "UPDATE player_profiles SET first_seen = first_seen - interval '2 hours'"
        " WHERE game_id = %s AND player_id = 'p1'",
        (game.id,),
    )
    assert _potion_price(client, game, "p1") == 50
    assert post(client, "/v1/purchases", {"sku": "egg"}, game).status_code == 201
    assert _service_get(client, game, "/v1/players/p1/risk")["tier"] is None


def test_the_player_tables_are_one(conn: psycopg.Connection) -> None:
    assert conn.execute("SELECT to_regclass('player_risk')").fetchone() == (None,)
    functions = {
        name
        for (name,) in conn.execute(
            "SELECT proname FROM pg_proc WHERE proname IN ('sk_player_seen', 'sk_risk_seen')"
        ).fetchall()
    }
    assert functions == {"sk_player_seen"}
