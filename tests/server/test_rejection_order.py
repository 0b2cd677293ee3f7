"""Which error wins when several apply to one purchase: the order the checks run in, tested
pairwise along it. Each test sends a request that breaks two rules at once and gets the earlier
one; where it helps, the same request without the earlier fault gets the later one, which shows
that both rules did apply.

The order (the HTTP edge, then the purchase function in the SQL):

 1. payload_too_large, then unsupported_media_type, then bad_request (the body, before anything)
 2. unauthenticated
 3. forbidden
 4. rate_limited
 5. idempotency_key_missing / idempotency_key_invalid
 6. validation_failed (the body's fields)
 7. the key: idempotency_key_in_use / idempotency_key_reused, or the stored outcome replayed
7a. account_frozen: the player is frozen (before the key is claimed, so not stored)
 8. not_found (no published catalog, no such item in the live catalog, or an item only a
    segment sees that the player is not in: the same answer)
 9. validation_failed (no currency for an item with several prices, a currency it is not sold in)
 9a. with hold_id: not_found (no such hold of this player), then validation_failed (hold_id: the
    hold is for another sku or quantity)
 9b. debt_outstanding (the player owes what a store chargeback could not take back)
10. price_changed
10a. with hold_id: hold_expired (expired, released or used)
11. item_unavailable (not with a usable hold)
12. sold_out (fewer left than asked; not with a hold, whose units are the buyer's)
13. insufficient_funds
13a. limit_exceeded, rule tier (the risk policy's trust tier: a limited item, a price cap)
13b. limit_exceeded, rule spend_limit (the risk policy's spend limits)
14. purchase_limit_reached (the per-player limit, held units counted, then the limit of the
    offer that priced it, then a durable already owned)
15. sold_out again when a concurrent buyer took the last units meanwhile, or hold_expired when
    the hold ended meanwhile (not tested here)
16. while granting a bundle's contents, items before currencies: purchase_limit_reached (a
    durable it holds is already owned), then balance_cap_exceeded

Placing a hold (POST /v1/holds, sql/31_holds.sql) after the same HTTP edge: account_frozen
(as a purchase, and as a code's redemption), not_found (no catalog, no such sku, an item of a
segment the player is not in), validation_failed (not a limited item), item_unavailable,
sold_out (a look), purchase_limit_reached (units bought and held, then a durable),
hold_limit_reached, and sold_out under lock (not tested here).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from shopkeep_server import db
from shopkeep_server.app import create_app
from shopkeep_server.store import catalog, games, risk
from support import Game, coins_catalog, coins_item, grant, make_config, make_game, new_key

TOKENLESS = {"Idempotency-Key": "order-test-key-0001"}


@pytest.fixture
def shop(conn: psycopg.Connection) -> Game:
    """A game whose items each break one rule on demand."""
    day = dt.timedelta(days=1)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def at(moment: dt.datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    return make_game(
        conn,
        {
            "currencies": [
                {"code": "COINS", "name": "Coins", "scale": 0},
                {"code": "GEMS", "name": "Gems", "scale": 0, "max_balance": 10},
            ],
            "items": [
                coins_item("potion", 50),
                coins_item(
                    "duo",
                    10,
                    prices=[{"currency": "COINS", "amount": 10}, {"currency": "GEMS", "amount": 1}],
                ),
                coins_item(
                    "closed",
                    50,
                    stock=1,
                    available_from=at(now - 2 * day),
                    available_until=at(now - day),
                ),
                coins_item("scarce", 50, stock=1),
                coins_item("relic", 30, kind="durable", stock=2),
                coins_item("crate", 1, stock=100, per_player_limit=20),
                coins_item("limited", 50, per_player_limit=1),
                coins_item("sword", 30, kind="durable"),
                coins_item(
                    "gem_pack",
                    10,
                    kind="bundle",
                    per_player_limit=1,
                    contents=[{"currency": "GEMS", "amount": 20}],
                ),
                coins_item(
                    "kit",
                    10,
                    kind="bundle",
                    contents=[{"sku": "sword", "quantity": 1}, {"currency": "GEMS", "amount": 20}],
                ),
            ],
        },
    )


def _buy(client: Any, game: Game, sub: str, *, key: str | None = None, **body: Any) -> str:
    """The error code a purchase gets ("" for a success)."""
    response = client.post(
        "/v1/purchases",
        json=body,
        headers=game.headers("player", sub, **{"Idempotency-Key": key or new_key()}),
    )
    if response.status_code < 300:
        return ""
    return str(response.get_json()["error"]["code"])


def _code(response: Any) -> str:
    return str(response.get_json()["error"]["code"])


# ---------------------------------------------------------------------------------------------
# The HTTP edge
# ---------------------------------------------------------------------------------------------


def test_body_size_before_media_type_before_json_before_the_token(client) -> None:
    big = b"x" * 70_000
    too_large = client.post("/v1/purchases", data=big, content_type="text/plain", headers=TOKENLESS)
    assert (too_large.status_code, _code(too_large)) == (413, "payload_too_large")
    not_json = client.post("/v1/purchases", data=b"{", content_type="text/plain", headers=TOKENLESS)
    assert (not_json.status_code, _code(not_json)) == (415, "unsupported_media_type")
    broken = client.post(
        "/v1/purchases", data=b"{", content_type="application/json", headers=TOKENLESS
    )
    assert (broken.status_code, _code(broken)) == (400, "bad_request")
    no_token = client.post("/v1/purchases", json={"sku": "potion"}, headers=TOKENLESS)
    assert (no_token.status_code, _code(no_token)) == (401, "unauthenticated")


def test_the_token_before_the_key(client, shop: Game) -> None:
    no_token = client.post("/v1/purchases", json={"sku": "potion"})
    assert (no_token.status_code, _code(no_token)) == (401, "unauthenticated")
    wrong_role = client.post(
        "/v1/purchases", json={"sku": "potion"}, headers=shop.headers("service", "backend")
    )
    assert (wrong_role.status_code, _code(wrong_role)) == (403, "forbidden")


def test_role_before_rate_limit_before_the_key(conn: psycopg.Connection, shop: Game) -> None:
    limited = create_app(
        make_config(rate_limit="1/day"), database=db.SingleConnectionDatabase(conn)
    )
    client = limited.test_client()
    # Each account spends its one request of the day.
    assert client.get("/v1/stock", headers=shop.headers("service", "backend")).status_code == 200
    assert client.get("/v1/wallet", headers=shop.headers("player", "p1")).status_code == 200
    wrong_role = client.post(
        "/v1/purchases", json={"sku": "potion"}, headers=shop.headers("service", "backend")
    )
    assert (wrong_role.status_code, _code(wrong_role)) == (403, "forbidden")
    no_key = client.post(
        "/v1/purchases", json={"sku": "potion"}, headers=shop.headers("player", "p1")
    )
    assert (no_key.status_code, _code(no_key)) == (429, "rate_limited")


def test_the_key_before_the_fields(client, shop: Game) -> None:
    bad = {"sku": "potion", "quantity": 0}
    no_key = client.post("/v1/purchases", json=bad, headers=shop.headers())
    assert (no_key.status_code, _code(no_key)) == (400, "idempotency_key_missing")
    bad_key = client.post(
        "/v1/purchases", json=bad, headers=shop.headers(**{"Idempotency-Key": "short"})
    )
    assert (bad_key.status_code, _code(bad_key)) == (400, "idempotency_key_invalid")


def test_the_fields_before_a_reused_key(client, shop: Game) -> None:
    key = new_key()
    assert _buy(client, shop, "p1", key=key, sku="potion") == "insufficient_funds"
    assert _buy(client, shop, "p1", key=key, sku="potion", quantity=0) == "validation_failed"
    assert _buy(client, shop, "p1", key=key, sku="potion", quantity=2) == "idempotency_key_reused"


def test_a_reused_key_before_the_store_rules(client, shop: Game) -> None:
    key = new_key()
    assert _buy(client, shop, "p1", key=key, sku="potion") == "insufficient_funds"
    assert _buy(client, shop, "p1", key=key, sku="no_such_item") == "idempotency_key_reused"


def test_a_replay_before_the_store_rules(client, shop: Game) -> None:
    grant(client, shop, "p1", "COINS", 50)
    key = new_key()
    assert _buy(client, shop, "p1", key=key, sku="potion") == ""
    # The wallet is empty now, so a new run would be refused; the same key replays instead.
    assert _buy(client, shop, "p1", sku="potion") == "insufficient_funds"
    assert _buy(client, shop, "p1", key=key, sku="potion") == ""


# ---------------------------------------------------------------------------------------------
# The purchase function
# ---------------------------------------------------------------------------------------------


def test_no_catalog_before_anything_else(client, conn: psycopg.Connection) -> None:
    games.create_game(conn, "unpublished")
    unpublished = Game("unpublished", games.add_key(conn, "unpublished", issuer="shopkeep"))
    assert _buy(client, unpublished, "p1", sku="potion", currency="GEMS") == "not_found"


def test_not_found_before_the_currency(client, shop: Game) -> None:
    assert _buy(client, shop, "p1", sku="no_such_item", currency="GEMS") == "not_found"
    assert _buy(client, shop, "p1", sku="potion", currency="GEMS") == "validation_failed"


def test_an_item_of_another_segment_is_not_found_before_the_currency(
    client, conn: psycopg.Connection
) -> None:
    """Step 2a of 60_purchase.sql: an item only a segment sees is, to a player outside it, an
    sku the catalog does not hold, so the answer comes before the currency's."""
    game = make_game(
        conn,
        {
            **coins_catalog(coins_item("potion", 50), coins_item("vip_potion", 40, segment="vip")),
            "segments": [{"id": "vip", "rule": "attr.vip = true"}],
        },
    )
    assert _buy(client, game, "p1", sku="vip_potion", currency="GEMS") == "not_found"
    response = client.put(
        "/v1/players/p1/attributes",
        json={"attributes": {"vip": True}},
        headers=game.headers("service", "backend"),
    )
    assert response.status_code == 200
    assert _buy(client, game, "p1", sku="vip_potion", currency="GEMS") == "validation_failed"
    assert _buy(client, game, "p1", sku="vip_potion") == "insufficient_funds"


def test_the_currency_before_the_price(client, shop: Game) -> None:
    wrong_price = {"currency": "COINS", "amount": 999}
    # Several prices and no currency; a currency the item is not sold in.
    assert _buy(client, shop, "p1", sku="duo", expected_price=wrong_price) == "validation_failed"
    assert (
        _buy(client, shop, "p1", sku="potion", currency="GEMS", expected_price=wrong_price)
        == "validation_failed"
    )
    assert (
        _buy(client, shop, "p1", sku="duo", currency="COINS", expected_price=wrong_price)
        == "price_changed"
    )


def test_the_currency_before_a_debt_before_the_price(
    client, conn: psycopg.Connection, shop: Game
) -> None:
    conn.execute(
        "INSERT INTO player_debts (game_id, player_id, currency, amount)"
        " VALUES (%s, 'p9', 'GEMS', 3)",
        (shop.id,),
    )
    wrong_price = {"currency": "COINS", "amount": 999}
    assert _buy(client, shop, "p9", sku="duo", expected_price=wrong_price) == "validation_failed"
    assert (
        _buy(client, shop, "p9", sku="duo", currency="COINS", expected_price=wrong_price)
        == "debt_outstanding"
    )
    assert _buy(client, shop, "p1", sku="duo", currency="COINS", expected_price=wrong_price) == (
        "price_changed"
    )


def test_the_price_before_the_sale_window(client, shop: Game) -> None:
    assert (
        _buy(client, shop, "p1", sku="closed", expected_price={"currency": "COINS", "amount": 1})
        == "price_changed"
    )
    assert (
        _buy(client, shop, "p1", sku="closed", expected_price={"currency": "COINS", "amount": 50})
        == "item_unavailable"
    )


def test_the_sale_window_before_the_stock(client, shop: Game) -> None:
    assert _buy(client, shop, "p1", sku="closed", quantity=2) == "item_unavailable"
    assert _buy(client, shop, "p1", sku="scarce", quantity=2) == "sold_out"


def test_the_stock_before_the_funds(client, shop: Game) -> None:
    assert _buy(client, shop, "p1", sku="scarce", quantity=2) == "sold_out"
    assert _buy(client, shop, "p1", sku="scarce", quantity=1) == "insufficient_funds"


def test_the_funds_before_the_purchase_limit(client, shop: Game) -> None:
    assert _buy(client, shop, "p1", sku="limited", quantity=2) == "insufficient_funds"
    grant(client, shop, "p1", "COINS", 1000)
    assert _buy(client, shop, "p1", sku="limited", quantity=2) == "purchase_limit_reached"
    # A durable already owned, with no funds left for it.
    grant(client, shop, "p2", "COINS", 30)
    assert _buy(client, shop, "p2", sku="sword") == ""
    assert _buy(client, shop, "p2", sku="sword") == "insufficient_funds"
    grant(client, shop, "p2", "COINS", 30)
    assert _buy(client, shop, "p2", sku="sword") == "purchase_limit_reached"


def test_the_purchase_limit_before_the_balance_cap(client, shop: Game) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    assert _buy(client, shop, "p1", sku="gem_pack", quantity=2) == "purchase_limit_reached"
    assert _buy(client, shop, "p1", sku="gem_pack", quantity=1) == "balance_cap_exceeded"


def test_a_bundles_items_before_its_currencies(client, shop: Game) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    assert _buy(client, shop, "p1", sku="kit") == "balance_cap_exceeded"
    assert _buy(client, shop, "p1", sku="sword") == ""
    assert _buy(client, shop, "p1", sku="kit") == "purchase_limit_reached"


def test_every_rule_at_once(client, shop: Game) -> None:
    # A closed, sold-out-for-this-quantity item at the wrong price, with no funds.
    assert (
        _buy(
            client,
            shop,
            "p1",
            sku="closed",
            quantity=2,
            expected_price={"currency": "COINS", "amount": 1},
        )
        == "price_changed"
    )


def _error(client: Any, game: Game, sub: str, **body: Any) -> tuple[str, dict[str, Any]]:
    response = client.post(
        "/v1/purchases",
        json=body,
        headers=game.headers("player", sub, **{"Idempotency-Key": new_key()}),
    )
    error = response.get_json()["error"]
    return str(error["code"]), dict(error["details"])


def test_an_offers_limit_after_the_price_the_funds_and_the_items_limit(
    client, conn: psycopg.Connection
) -> None:
    """Step 9b of 60_purchase.sql: the per-player limit of the offer that priced a purchase."""
    catalog = coins_catalog(
        coins_item("potion", 50, per_player_limit=1),
        coins_item("elixir", 50),
        coins_item("gem_pack", 50, kind="bundle", contents=[{"currency": "GEMS", "amount": 20}]),
    )
    catalog["currencies"].append({"code": "GEMS", "name": "Gems", "scale": 0, "max_balance": 10})
    catalog["offers"] = [
        {"id": f"{sku}-deal", "sku": sku, "discount_percent": 80, "per_player_limit": 1}
        for sku in ("potion", "elixir", "gem_pack")
    ]
    game = make_game(conn, catalog)
    wrong = {"currency": "COINS", "amount": 50}  # the list price: this player's is 10
    assert _error(client, game, "p1", sku="elixir", quantity=2, expected_price=wrong)[0] == (
        "price_changed"
    )
    assert _error(client, game, "p1", sku="elixir", quantity=2)[0] == "insufficient_funds"
    grant(client, game, "p1", "COINS", 1000)
    # The item's own limit comes first (no offer named), then the offer's.
    assert _error(client, game, "p1", sku="potion", quantity=2) == (
        "purchase_limit_reached",
        {"sku": "potion", "limit": 1, "purchased": 0},
    )
    assert _error(client, game, "p1", sku="elixir", quantity=2) == (
        "purchase_limit_reached",
        {"sku": "elixir", "offer_id": "elixir-deal", "limit": 1, "purchased": 0},
    )
    # The offer's limit before the balance cap of what a bundle gives.
    assert _error(client, game, "p1", sku="gem_pack", quantity=2)[1]["offer_id"] == "gem_pack-deal"
    assert _error(client, game, "p1", sku="gem_pack")[0] == "balance_cap_exceeded"


# ---------------------------------------------------------------------------------------------
# The risk policy (sql/65_risk.sql)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def risky_shop(conn: psycopg.Connection, shop: Game) -> Game:
    """The same shop with a policy: new players buy no limited items, one purchase an hour."""
    content, _ = catalog.get_draft(conn, shop.id)
    content["risk"] = {
        "tiers": [{"name": "new", "while_younger_than_seconds": 3600, "limited_items": False}],
        "spend_limits": [{"currency": "COINS", "window_seconds": 3600, "max_count": 1}],
    }
    with conn.transaction():
        catalog.put_draft(conn, shop.id, content, if_match="*")
        catalog.publish(conn, shop.id, actor="fixture", stock_buckets=4)
    return shop


def _rule(client: Any, game: Game, sub: str, **body: Any) -> str:
    """The risk rule that refused a purchase (its code must be limit_exceeded)."""
    response = client.post(
        "/v1/purchases",
        json=body,
        headers=game.headers("player", sub, **{"Idempotency-Key": new_key()}),
    )
    assert _code(response) == "limit_exceeded"
    return str(response.get_json()["error"]["details"]["rule"])


def test_a_replay_before_a_freeze_before_the_store_rules(
    client, conn: psycopg.Connection, shop: Game
) -> None:
    grant(client, shop, "p1", "COINS", 50)
    key = new_key()
    assert _buy(client, shop, "p1", key=key, sku="potion") == ""
    with conn.transaction():
        risk.freeze(conn, shop.id, "p1", actor="support", reason="test")
    assert _buy(client, shop, "p1", key=key, sku="potion") == ""  # replayed
    assert _buy(client, shop, "p1", sku="no_such_item") == "account_frozen"
    with conn.transaction():
        risk.unfreeze(conn, shop.id, "p1", actor="support", reason="test")
    assert _buy(client, shop, "p1", sku="no_such_item") == "not_found"


def test_a_freeze_before_a_holds_and_a_codes_store_rules(
    client, conn: psycopg.Connection, shop: Game
) -> None:
    """Step 0a of 31_holds.sql and of sk_redeem_code (66_offers.sql): a frozen player hears
    account_frozen before anything about the sku or the code."""
    with conn.transaction():
        risk.freeze(conn, shop.id, "p1", actor="support", reason="test")
    redeem = client.post(
        "/v1/promo-codes/redeem",
        json={"code": "NO-SUCH-CODE"},
        headers=shop.headers("player", "p1", **{"Idempotency-Key": new_key()}),
    )
    assert _code(redeem) == "account_frozen"
    assert _hold_code(client, shop, "no_such_item") == "account_frozen"
    with conn.transaction():
        risk.unfreeze(conn, shop.id, "p1", actor="support", reason="test")
    redeem = client.post(
        "/v1/promo-codes/redeem",
        json={"code": "NO-SUCH-CODE"},
        headers=shop.headers("player", "p1", **{"Idempotency-Key": new_key()}),
    )
    assert _code(redeem) == "not_found"
    assert _hold_code(client, shop, "no_such_item") == "not_found"


def test_the_funds_before_the_tier_before_the_spend_limit(client, risky_shop: Game) -> None:
    assert _buy(client, risky_shop, "p1", sku="scarce") == "insufficient_funds"
    grant(client, risky_shop, "p1", "COINS", 1000)
    assert _buy(client, risky_shop, "p1", sku="potion") == ""  # the hour's one purchase
    assert _rule(client, risky_shop, "p1", sku="scarce") == "tier"
    raised = client.put(
        "/v1/players/p1/risk/tier",
        json={"tier": "trusted", "reason": "test"},
        headers=risky_shop.headers("service", "backend"),
    )
    assert raised.status_code == 200
    assert _rule(client, risky_shop, "p1", sku="scarce") == "spend_limit"


def test_the_spend_limit_before_the_purchase_limit(
    client, conn: psycopg.Connection, risky_shop: Game
) -> None:
    grant(client, risky_shop, "p1", "COINS", 1000)
    assert _buy(client, risky_shop, "p1", sku="limited") == ""
    assert _rule(client, risky_shop, "p1", sku="limited") == "spend_limit"
    # The purchase leaves the window: the per-player limit is what is left.
    conn.execute(
        "UPDATE purchases SET created_at = now() - interval '2 hours' WHERE game_id = %s",
        (risky_shop.id,),
    )
    assert _buy(client, risky_shop, "p1", sku="limited") == "purchase_limit_reached"


# ---------------------------------------------------------------------------------------------
# A purchase that names a hold
# ---------------------------------------------------------------------------------------------


def _hold(client: Any, game: Game, sub: str, sku: str, quantity: int = 1) -> Any:
    return client.post(
        "/v1/holds",
        json={"sku": sku, "quantity": quantity},
        headers=game.headers("player", sub, **{"Idempotency-Key": new_key()}),
    )


def _held(client: Any, game: Game, sub: str, sku: str, quantity: int = 1) -> str:
    response = _hold(client, game, sub, sku, quantity)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["hold"]["id"])


def _release(client: Any, game: Game, sub: str, hold_id: str) -> None:
    response = client.delete(f"/v1/holds/{hold_id}", headers=game.headers("player", sub))
    assert response.status_code == 200


def test_the_currency_before_the_hold(client, shop: Game) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    assert _buy(client, shop, "p1", sku="scarce", currency="GEMS", hold_id=unknown) == (
        "validation_failed"
    )
    assert _buy(client, shop, "p1", sku="scarce", hold_id=unknown) == "not_found"


def test_the_hold_before_the_price(client, shop: Game) -> None:
    wrong_price = {"currency": "COINS", "amount": 1}
    unknown = "00000000-0000-4000-8000-000000000000"
    hold_id = _held(client, shop, "p1", "scarce")
    assert _buy(client, shop, "p1", sku="scarce", hold_id=unknown, expected_price=wrong_price) == (
        "not_found"
    )
    # Another player's hold is no hold of this player's.
    assert _buy(client, shop, "p2", sku="scarce", hold_id=hold_id, expected_price=wrong_price) == (
        "not_found"
    )
    assert (
        _buy(
            client,
            shop,
            "p1",
            sku="scarce",
            quantity=2,
            hold_id=hold_id,
            expected_price=wrong_price,
        )
        == "validation_failed"
    )
    assert _buy(client, shop, "p1", sku="scarce", hold_id=hold_id, expected_price=wrong_price) == (
        "price_changed"
    )


def test_the_price_before_an_ended_hold(client, shop: Game) -> None:
    hold_id = _held(client, shop, "p1", "scarce")
    _release(client, shop, "p1", hold_id)
    wrong_price = {"currency": "COINS", "amount": 1}
    assert _buy(client, shop, "p1", sku="scarce", hold_id=hold_id, expected_price=wrong_price) == (
        "price_changed"
    )
    assert _buy(client, shop, "p1", sku="scarce", hold_id=hold_id) == "hold_expired"


def test_an_ended_hold_before_the_stock_and_the_funds(client, shop: Game) -> None:
    hold_id = _held(client, shop, "p1", "scarce")
    _release(client, shop, "p1", hold_id)
    grant(client, shop, "p2", "COINS", 50)
    assert _buy(client, shop, "p2", sku="scarce") == ""
    # Sold out now, and p1 has no coins: the ended hold is the answer.
    assert _buy(client, shop, "p1", sku="scarce") == "sold_out"
    assert _buy(client, shop, "p1", sku="scarce", hold_id=hold_id) == "hold_expired"


def test_a_usable_hold_is_not_told_sold_out(client, shop: Game) -> None:
    hold_id = _held(client, shop, "p1", "scarce")
    assert _buy(client, shop, "p2", sku="scarce") == "sold_out"
    # Every unit is held, by p1: p1 hears about the funds, not the stock.
    assert _buy(client, shop, "p1", sku="scarce", hold_id=hold_id) == "insufficient_funds"
    grant(client, shop, "p1", "COINS", 50)
    assert _buy(client, shop, "p1", sku="scarce", hold_id=hold_id) == ""


def test_held_units_count_against_the_purchase_limit(client, shop: Game) -> None:
    grant(client, shop, "p1", "COINS", 100)
    assert _buy(client, shop, "p1", sku="crate", quantity=10) == ""
    _held(client, shop, "p1", "crate", 10)
    assert _buy(client, shop, "p1", sku="crate", quantity=1) == "purchase_limit_reached"


# ---------------------------------------------------------------------------------------------
# Placing a hold
# ---------------------------------------------------------------------------------------------


def _hold_code(client: Any, game: Game, sku: str, quantity: int = 1, sub: str = "p1") -> str:
    response = _hold(client, game, sub, sku, quantity)
    return "" if response.status_code < 300 else _code(response)


def test_placing_a_hold_without_a_catalog_or_an_item(client, conn: psycopg.Connection) -> None:
    games.create_game(conn, "unheld")
    unpublished = Game("unheld", games.add_key(conn, "unheld", issuer="shopkeep"))
    assert _hold_code(client, unpublished, "potion") == "not_found"


def test_an_unknown_item_before_an_unlimited_one(client, shop: Game) -> None:
    assert _hold_code(client, shop, "no_such_item") == "not_found"
    assert _hold_code(client, shop, "potion") == "validation_failed"


def test_a_hold_checks_the_window_before_the_stock(client, shop: Game) -> None:
    assert _hold_code(client, shop, "closed", 2) == "item_unavailable"
    assert _hold_code(client, shop, "scarce", 2) == "sold_out"


def test_a_hold_checks_the_stock_before_the_limits(client, shop: Game) -> None:
    assert _hold_code(client, shop, "relic", 3) == "sold_out"
    assert _hold_code(client, shop, "relic", 2) == "purchase_limit_reached"


def test_a_hold_checks_the_purchase_limit_before_the_hold_cap(client, shop: Game) -> None:
    assert _hold_code(client, shop, "crate", 21) == "purchase_limit_reached"
    assert _hold_code(client, shop, "crate", 11) == "hold_limit_reached"
    assert _hold_code(client, shop, "crate", 10) == ""
