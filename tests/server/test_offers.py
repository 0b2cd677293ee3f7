"""Personalized offers (issue 15): segments over player attributes, offers priced by one SQL
function for the catalog view and the purchase, the purchase charging exactly what the player
was shown (or price_changed), offer_id on the purchase and in its ledger reference, per-offer
limits, the rounding rule, localized text, and promo codes."""

from __future__ import annotations

import datetime as dt
import random
from fractions import Fraction
from typing import Any

import psycopg
import pytest

from shopkeep_server.store import segments
from support import Game, buy, coins_item, grant, make_game, post
from support.events import event_mismatches, stored_events

DAY = dt.timedelta(days=1)


def _at(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _catalog(**parts: Any) -> dict[str, Any]:
    return {
        "currencies": [
            {"code": "COINS", "name": "Coins", "scale": 0},
            {"code": "USD", "name": "US dollar", "scale": 4},
        ],
        "items": [
            coins_item("potion", 100),
            coins_item(
                "shield",
                120,
                prices=[{"currency": "COINS", "amount": 120}, {"currency": "USD", "amount": 9999}],
                localized={
                    "pt-BR": {"name": "Escudo", "description": "Dez segundos."},
                    "fr": {"name": "Bouclier"},
                },
            ),
        ],
        **parts,
    }


VETERANS = {
    "segments": [{"id": "veterans", "rule": "attr.level >= 10"}],
    "offers": [
        {"id": "vet-potion", "segment": "veterans", "sku": "potion", "discount_percent": 33},
    ],
}


def _view(client: Any, game: Game, sub: str, **headers: str) -> Any:
    response = client.get("/v1/catalog", headers=game.headers("player", sub, **headers))
    assert response.status_code == 200, response.get_json()
    return response


def _price(view: Any, sku: str, currency: str = "COINS") -> dict[str, Any]:
    item = next(i for i in view.get_json()["items"] if i["sku"] == sku)
    return next(p for p in item["price_for_you"] if p["currency"] == currency)


def _set_level(client: Any, game: Game, player: str, level: int) -> None:
    response = client.put(
        f"/v1/players/{player}/attributes",
        json={"attributes": {"level": level}},
        headers=game.headers("service", "backend"),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["attributes"] == {"level": level}


def _balance(conn: psycopg.Connection, game: Game, player: str) -> int:
    row = conn.execute(
        "SELECT balance FROM wallets WHERE game_id = %s AND player_id = %s AND currency = 'COINS'",
        (game.id, player),
    ).fetchone()
    return 0 if row is None else row[0]


def test_two_players_see_different_prices_and_each_pays_what_it_saw(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, _catalog(**VETERANS))
    _set_level(client, game, "vet", 12)
    _set_level(client, game, "rookie", 3)
    for player in ("vet", "rookie"):
        grant(client, game, player, "COINS", 1000)

    seen = {player: _price(_view(client, game, player), "potion") for player in ("vet", "rookie")}
    assert seen["vet"] == {"currency": "COINS", "amount": 67, "offer_id": "vet-potion"}
    assert seen["rookie"] == {"currency": "COINS", "amount": 100, "offer_id": None}

    for player, price in seen.items():
        expected = {"currency": "COINS", "amount": price["amount"]}
        response = buy(client, game, "potion", sub=player, quantity=2, expected_price=expected)
        assert response.status_code == 201, response.get_json()
        purchase = response.get_json()["purchase"]
        assert purchase["unit_price"] == expected
        assert purchase["price"] == {"currency": "COINS", "amount": 2 * price["amount"]}
        assert purchase["offer_id"] == price["offer_id"]
        assert _balance(conn, game, player) == 1000 - 2 * price["amount"]
    # The ledger says which offer priced the veteran's purchase; the rookie's is the list price.
    references = dict(
        conn.execute(
            "SELECT player_id, reference FROM ledger_entries"
            " WHERE game_id = %s AND kind = 'purchase'",
            (game.id,),
        ).fetchall()
    )
    assert references["vet"].startswith("purchase:") and references["vet"].endswith(
        ":offer:vet-potion"
    )
    assert ":offer:" not in references["rookie"]
    # The purchase reads and the per-offer figures see the same offer.
    listed = client.get("/v1/purchases", headers=game.headers("player", "vet")).get_json()
    assert [p["offer_id"] for p in listed["purchases"]] == ["vet-potion"]


def test_leaving_the_segment_mid_session_is_price_changed_not_a_silent_charge(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, _catalog(**VETERANS))
    _set_level(client, game, "p1", 10)
    grant(client, game, "p1", "COINS", 500)
    shown = _price(_view(client, game, "p1"), "potion")
    assert shown["amount"] == 67
    _set_level(client, game, "p1", 9)  # the backend demotes the player meanwhile

    response = buy(
        client, game, "potion", sub="p1", expected_price={"currency": "COINS", "amount": 67}
    )
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "price_changed"
    assert error["details"]["current"] == {"currency": "COINS", "amount": 100}
    assert _balance(conn, game, "p1") == 500
    assert conn.execute(
        "SELECT count(*) FROM purchases WHERE game_id = %s", (game.id,)
    ).fetchone() == (0,)
    # Its view now shows the list price, and the ETag of its view changed with it.
    again = _view(client, game, "p1")
    assert _price(again, "potion") == {"currency": "COINS", "amount": 100, "offer_id": None}


def test_the_etag_covers_the_players_view(client: Any, conn: psycopg.Connection) -> None:
    game = make_game(conn, _catalog(**VETERANS))
    _set_level(client, game, "vet", 10)
    vet, rookie = _view(client, game, "vet"), _view(client, game, "rookie")
    assert vet.headers["ETag"] != rookie.headers["ETag"]
    # Each player's own ETag gives 304; another player's does not.
    same = client.get(
        "/v1/catalog",
        headers=game.headers("player", "vet", **{"If-None-Match": vet.headers["ETag"]}),
    )
    assert same.status_code == 304
    other = client.get(
        "/v1/catalog",
        headers=game.headers("player", "rookie", **{"If-None-Match": vet.headers["ETag"]}),
    )
    assert other.status_code == 200
    # Segments, offers and codes stay with the studio.
    assert set(vet.get_json()) == {"version", "locale", "currencies", "items", "products"}


def test_an_offers_per_player_limit_then_the_list_price(
    client: Any, conn: psycopg.Connection
) -> None:
    starter = {
        "segments": [{"id": "new", "rule": "first_seen within 7d"}],
        "offers": [
            {
                "id": "starter",
                "segment": "new",
                "sku": "potion",
                "price": {"currency": "COINS", "amount": 10},
                "per_player_limit": 1,
            }
        ],
    }
    game = make_game(conn, _catalog(**starter))
    grant(client, game, "p1", "COINS", 500)
    assert _price(_view(client, game, "p1"), "potion")["amount"] == 10
    two = buy(client, game, "potion", sub="p1", quantity=2)
    assert two.status_code == 409
    assert two.get_json()["error"]["code"] == "purchase_limit_reached"
    assert two.get_json()["error"]["details"] == {
        "sku": "potion",
        "offer_id": "starter",
        "limit": 1,
        "purchased": 0,
    }
    assert _balance(conn, game, "p1") == 500
    one = buy(client, game, "potion", sub="p1", expected_price={"currency": "COINS", "amount": 10})
    assert one.status_code == 201
    assert one.get_json()["purchase"]["offer_id"] == "starter"
    # Used up: the player sees, and pays, the list price again.
    assert _price(_view(client, game, "p1"), "potion") == {
        "currency": "COINS",
        "amount": 100,
        "offer_id": None,
    }
    after = buy(
        client, game, "potion", sub="p1", expected_price={"currency": "COINS", "amount": 100}
    )
    assert after.status_code == 201
    assert after.get_json()["purchase"]["offer_id"] is None
    assert _balance(conn, game, "p1") == 500 - 10 - 100


def _round_half_up(value: Fraction) -> int:
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


@pytest.mark.parametrize("scale", [0, 4])
def test_a_third_off_rounds_half_up_to_the_minor_unit(conn: psycopg.Connection, scale: int) -> None:
    """The one rule (sk_offer_amount), checked against exact fractions over many prices:
    every price up to 3000 minor units, then a seeded sample up to the largest amount."""
    rng = random.Random(20261201 + scale)
    top = 9_007_199_254_740_991
    prices = list(range(0, 3001)) + [rng.randrange(3001, top) for _ in range(3000)] + [top]
    rows = conn.execute(
        "SELECT p, sk_offer_amount(p, NULL, 33, NULL) FROM unnest(%s::bigint[]) AS p",
        (prices,),
    ).fetchall()
    for price, charged in rows:
        assert charged == _round_half_up(Fraction(price * 67, 100)), price
    # The same rule through a published catalog at this scale: what the player sees.
    game = make_game(
        conn,
        {
            "currencies": [{"code": "CUR", "name": "Currency", "scale": scale}],
            "items": [
                {
                    "sku": f"i{n}",
                    "name": f"Item {n}",
                    "kind": "consumable",
                    "prices": [{"currency": "CUR", "amount": amount}],
                }
                for n, amount in enumerate([1, 2, 3, 5, 10, 15, 150, 1234, 99999, 10**12 + 49])
            ],
            "offers": [{"id": f"o{n}", "sku": f"i{n}", "discount_percent": 33} for n in range(10)],
        },
    )
    prices_seen = conn.execute(
        "SELECT sku, amount FROM sk_catalog_prices(%s, 'p1',"
        " (SELECT live_version_id FROM games WHERE id = %s), now())",
        (game.id, game.id),
    ).fetchall()
    expected = {1: 1, 2: 1, 3: 2, 5: 3, 10: 7, 15: 10, 150: 101, 1234: 827, 99999: 66999}
    by_sku = dict(prices_seen)
    # An offer that does not lower the price is not applied: 1 at a third off is still 1.
    assert "i0" not in by_sku
    for n, (listed, charged) in enumerate(expected.items()):
        assert by_sku.get(f"i{n}", listed) == charged, listed
    assert by_sku["i9"] == _round_half_up(Fraction((10**12 + 49) * 67, 100))


def test_a_sale_window_is_decided_at_the_purchase_transactions_time(
    conn: psycopg.Connection,
) -> None:
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    game = make_game(
        conn,
        _catalog(
            offers=[
                {
                    "id": "weekend",
                    "sku": "potion",
                    "discount_percent": 50,
                    "starts_at": _at(now - DAY),
                    "ends_at": _at(now + dt.timedelta(hours=1)),
                }
            ]
        ),
    )
    version = conn.execute("SELECT live_version_id FROM games WHERE id = %s", (game.id,)).fetchone()
    assert version is not None

    def price_at(moment: dt.datetime) -> tuple[int, str | None]:
        row = conn.execute(
            "SELECT amount, offer_id FROM sk_offer_price(%s, 'p1', %s, 'potion', 'COINS', 100,"
            " %s, NULL)",
            (game.id, version[0], moment),
        ).fetchone()
        assert row is not None
        return row[0], row[1]

    end = now + dt.timedelta(hours=1)
    assert price_at(now - DAY - dt.timedelta(microseconds=1)) == (100, None)
    assert price_at(now - DAY) == (50, "weekend")
    assert price_at(end - dt.timedelta(microseconds=1)) == (50, "weekend")
    assert price_at(end) == (100, None)


# ---------------------------------------------------------------------------------------------
# Localized text
# ---------------------------------------------------------------------------------------------


def test_accept_language_picks_the_text_and_prices_stay_integers(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, _catalog())
    plain = _view(client, game, "p1")
    assert plain.get_json()["locale"] is None
    shield = next(i for i in plain.get_json()["items"] if i["sku"] == "shield")
    assert shield["name"] == "Shield"
    assert "Accept-Language" in plain.headers.get("Vary", "")

    brazil = _view(client, game, "p1", **{"Accept-Language": "pt-BR,pt;q=0.9,en;q=0.5"})
    body = brazil.get_json()
    assert body["locale"] == "pt-BR"
    shield = next(i for i in body["items"] if i["sku"] == "shield")
    assert (shield["name"], shield["description"]) == ("Escudo", "Dez segundos.")
    assert shield["prices"] == [
        {"currency": "COINS", "amount": 120},
        {"currency": "USD", "amount": 9999},
    ]
    potion = next(i for i in body["items"] if i["sku"] == "potion")
    assert potion["name"] == "Potion"  # no pt-BR text: the catalog's own
    assert brazil.headers["ETag"] != plain.headers["ETag"]

    # A plain language matches its regional text; a French reader keeps the own description.
    assert _view(client, game, "p1", **{"Accept-Language": "pt"}).get_json()["locale"] == "pt-BR"
    french = _view(client, game, "p1", **{"Accept-Language": "fr-CA, en;q=0.1"}).get_json()
    shield = next(i for i in french["items"] if i["sku"] == "shield")
    assert (french["locale"], shield["name"], shield["description"]) == ("fr", "Bouclier", "")
    assert _view(client, game, "p1", **{"Accept-Language": "de"}).get_json()["locale"] is None


# ---------------------------------------------------------------------------------------------
# Promo codes
# ---------------------------------------------------------------------------------------------


def _redeem(client: Any, game: Game, sub: str, code: str, key: str | None = None) -> Any:
    return post(client, "/v1/promo-codes/redeem", {"code": code}, game, sub=sub, key=key)


def test_a_code_unlocks_its_offer_once_per_player(client: Any, conn: psycopg.Connection) -> None:
    game = make_game(
        conn,
        _catalog(
            offers=[
                {
                    "id": "stream",
                    "sku": "shield",
                    "price": {"currency": "COINS", "amount": 1},
                }
            ],
            promo_codes=[{"code": "STREAM-42", "offer": "stream", "budget": 2}],
        ),
    )
    grant(client, game, "p1", "COINS", 10)
    assert _price(_view(client, game, "p1"), "shield")["amount"] == 120  # locked until redeemed
    unknown = _redeem(client, game, "p1", "NOPE-1234")
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "not_found"

    key = "redeem-key-000000001"
    first = _redeem(client, game, "p1", "stream-42", key=key)  # codes ignore case
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["offer_id"] == "stream"
    replay = _redeem(client, game, "p1", "stream-42", key=key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.data == first.data
    twice = _redeem(client, game, "p1", "STREAM-42")
    assert twice.status_code == 409
    assert twice.get_json()["error"]["code"] == "code_already_redeemed"

    assert _price(_view(client, game, "p1"), "shield") == {
        "currency": "COINS",
        "amount": 1,
        "offer_id": "stream",
    }
    assert _price(_view(client, game, "p2"), "shield")["amount"] == 120
    bought = buy(client, game, "shield", sub="p1", currency="COINS")
    assert bought.get_json()["purchase"]["offer_id"] == "stream"

    assert _redeem(client, game, "p2", "STREAM-42").status_code == 200
    exhausted = _redeem(client, game, "p3", "STREAM-42")
    assert exhausted.status_code == 409
    assert exhausted.get_json()["error"] == {
        "code": "code_exhausted",
        "message": "this code has been used up",
        "details": {"code": "STREAM-42"},
        "request_id": exhausted.headers["X-Request-Id"],
    }
    assert conn.execute(
        "SELECT redeemed, budget FROM promo_code_budgets WHERE game_id = %s", (game.id,)
    ).fetchone() == (2, 2)
    # One code.redeemed per redemption: the replay and the refusals wrote none.
    redemptions = [e for e in stored_events(conn, game.id) if e["type"] == "code.redeemed"]
    assert [(e["player_id"], e["data"]) for e in redemptions] == [
        (
            player,
            {
                "code": "STREAM-42",
                "offer_id": "stream",
                "granted": [],
                "ledger": [],
                "item_ledger": [],
            },
        )
        for player in ("p1", "p2")
    ]
    assert event_mismatches(conn, game.id) == []


def test_a_code_grants_contents_inside_its_window_and_segment(
    client: Any, conn: psycopg.Connection
) -> None:
    now = dt.datetime.now(dt.UTC)
    game = make_game(
        conn,
        _catalog(
            segments=[{"id": "br", "rule": 'country = "BR"'}],
            promo_codes=[
                {
                    "code": "BRASIL",
                    "segment": "br",
                    "grant": [
                        {"currency": "COINS", "amount": 50},
                        {"sku": "potion", "quantity": 2},
                    ],
                    "budget": 10,
                },
                {
                    "code": "LATER",
                    "grant": [{"currency": "COINS", "amount": 5}],
                    "budget": 10,
                    "starts_at": _at(now + DAY),
                },
            ],
        ),
    )
    # Outside its segment or its window a code is as unknown as a code that never existed.
    assert _redeem(client, game, "p1", "BRASIL").status_code == 404
    assert _redeem(client, game, "p1", "LATER").status_code == 404
    response = client.put(
        "/v1/players/p1/attributes",
        json={"country": "BR", "attributes": {}},
        headers=game.headers("service", "backend"),
    )
    assert response.get_json()["country"] == "BR"
    redeemed = _redeem(client, game, "p1", "BRASIL")
    assert redeemed.status_code == 200, redeemed.get_json()
    body = redeemed.get_json()
    assert body["granted"] == [
        {"sku": "potion", "quantity": 2},
        {"currency": "COINS", "amount": 50},
    ]
    assert {"currency": "COINS", "amount": 50} in body["balances"]
    assert body["inventory"] == [{"sku": "potion", "quantity": 2}]
    # Its event carries what it granted and the rows it wrote, as the ledgers hold them.
    (event,) = [e for e in stored_events(conn, game.id) if e["type"] == "code.redeemed"]
    assert event["player_id"] == "p1"
    data = event["data"]
    assert (data["code"], data["offer_id"], data["granted"]) == ("BRASIL", None, body["granted"])
    assert [
        (r["currency"], r["delta"], r["balance_after"], r["kind"], r["reference"])
        for r in data["ledger"]
    ] == [("COINS", 50, 50, "grant", "promo:BRASIL")]
    assert [
        (r["sku"], r["delta"], r["quantity_after"], r["kind"], r["reference"])
        for r in data["item_ledger"]
    ] == [("potion", 2, 2, "grant", "promo:BRASIL")]
    assert event_mismatches(conn, game.id) == []


def test_player_attributes_are_validated_and_read_back(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, _catalog(**VETERANS))
    headers = game.headers("service", "backend")
    bad = client.put(
        "/v1/players/p1/attributes",
        json={"country": "Brazil", "attributes": {"Level": 1, "vip": 1.5, "x": "a\nb"}},
        headers=headers,
    )
    assert bad.status_code == 422
    details = bad.get_json()["error"]["details"]
    assert set(details) == {
        "country",
        "attributes.Level.key",
        "attributes.vip.value",
        "attributes.x.value",
    }
    assert (
        client.put(
            "/v1/players/p1/attributes",
            json={"attributes": {}},
            headers=game.headers("player", "p1"),
        ).status_code
        == 403
    )

    _set_level(client, game, "p1", 11)
    grant(client, game, "p1", "COINS", 1000)
    assert buy(client, game, "potion", sub="p1").status_code == 201
    read = client.get("/v1/players/p1/attributes", headers=headers).get_json()
    assert read["attributes"] == {"level": 11}
    assert read["spend"] == [{"currency": "COINS", "amount": 67}]
    assert read["first_seen"] is not None and read["last_purchase"] is not None


# ---------------------------------------------------------------------------------------------
# The catalog's new parts: references and rules checked with their paths
# ---------------------------------------------------------------------------------------------


def test_offers_segments_and_codes_are_checked_with_their_paths(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, _catalog())
    content = _catalog(
        segments=[
            {"id": "broken", "rule": "attr.level >= "},
            {"id": "ok", "rule": 'country = "BR"'},
        ],
        offers=[
            {"id": "a", "segment": "nope", "sku": "potion", "discount_percent": 10},
            {"id": "a", "sku": "ghost", "discount_percent": 10},
            {"id": "b", "sku": "potion", "price": {"currency": "USD", "amount": 1}},
        ],
        promo_codes=[{"code": "GOOD", "offer": "zz", "budget": 1}],
    )

    def refused(body: dict[str, Any]) -> dict[str, list[str]]:
        response = client.post(
            "/v1/admin/catalog/validate",
            json=body,
            headers=game.headers("studio", "s", **{"Idempotency-Key": "validate-key-0000001"}),
        )
        assert response.status_code == 422
        return dict(response.get_json()["error"]["details"])

    details = refused(content)
    assert details["segments.0.rule"] == [
        "column 15: expected a \"string\", an integer, true or false, found 'the end'"
    ]
    assert details["offers.0.segment"] == ["not a segment of this catalog"]
    assert details["offers.1.id"] == ["a appears twice"]
    assert details["offers.1.sku"] == ["not an item of this catalog"]
    assert details["offers.2.price.currency"] == ["potion has no price in this currency"]
    assert details["promo_codes.0.offer"] == ["not an offer of this catalog"]
    assert len(details) == 6
    # The fields themselves first (a catalog whose fields fail is not cross-checked).
    assert refused(
        _catalog(
            offers=[
                {
                    "id": "c",
                    "sku": "potion",
                    "discount_percent": 10,
                    "discount_amount": {"currency": "COINS", "amount": 1},
                },
                {"id": "d", "sku": "potion", "discount_percent": 101},
            ],
            promo_codes=[{"code": "X1", "grant": [], "budget": 0}],
        )
    ) == {
        "offers.0": ["give exactly one of price, discount_percent, discount_amount"],
        "offers.1.discount_percent": [
            "Must be greater than or equal to 1 and less than or equal to 100."
        ],
        "promo_codes.0.code": ["must match ^[A-Z0-9][A-Z0-9_-]{3,31}$"],
        "promo_codes.0.budget": [
            "Must be greater than or equal to 1 and less than or equal to 9007199254740991."
        ],
    }


@pytest.mark.parametrize(
    ("rule", "column"),
    [
        ("", 1),
        ("level >= 3", 1),
        ("attr.level >= 3 and", 20),
        ("first_seen = 3", 12),
        ("first_seen within 7", 19),
        ('country > "BR"', 9),
        ("(attr.vip = true", 17),
        ("attr.vip = true or __import__", 20),
        ('spend.GOLD >= "x"', 12),
        ("attr.a = 1 $", 12),
    ],
)
def test_a_rule_that_does_not_parse_names_its_column(rule: str, column: int) -> None:
    with pytest.raises(segments.RuleError) as raised:
        segments.parse(rule)
    assert raised.value.column == column, str(raised.value)


def test_rules_parse_into_the_tree_sql_evaluates(conn: psycopg.Connection) -> None:
    tree = segments.parse(
        'first_seen within 7d and (country = "BR" or not attr.level < 10) and spend.GOLD >= 5'
    )
    assert tree == {
        "op": "and",
        "args": [
            {"op": "within", "path": ["first_seen"], "seconds": 7 * 86400},
            {
                "op": "or",
                "args": [
                    {"op": "=", "path": ["country"], "value": "BR"},
                    {"op": "not", "arg": {"op": "<", "path": ["attr", "level"], "value": 10}},
                ],
            },
            {"op": ">=", "path": ["spend", "GOLD"], "value": 5},
        ],
    }
    now = dt.datetime.now(dt.UTC)

    def matches(facts: dict[str, Any]) -> bool:
        row = conn.execute(
            "SELECT sk_rule_matches(%s::jsonb, %s::jsonb, %s)",
            (psycopg.types.json.Jsonb(tree), psycopg.types.json.Jsonb(facts), now),
        ).fetchone()
        assert row is not None
        return bool(row[0])

    recent = _at(now - dt.timedelta(days=2))
    assert matches({"first_seen": recent, "country": "BR", "spend": {"GOLD": 5}})
    assert matches({"first_seen": recent, "attr": {"level": 12}, "spend": {"GOLD": 9}})
    # A missing fact fails its condition; `not` of a missing one holds.
    assert matches({"first_seen": recent, "spend": {"GOLD": 5}})
    assert not matches({"first_seen": recent, "attr": {"level": 3}, "spend": {"GOLD": 5}})
    assert not matches({"first_seen": _at(now - 8 * DAY), "country": "BR", "spend": {"GOLD": 5}})
    assert not matches({"first_seen": recent, "country": "BR"})
    # A type mismatch is false, never an error.
    assert not matches({"first_seen": recent, "country": "BR", "spend": {"GOLD": "5"}})
