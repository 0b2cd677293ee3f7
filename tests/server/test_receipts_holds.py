"""A receipt that names a hold: paying at the store for a limited item converts the player's hold
into the purchase of the held units. The rule: the receipt's product grants the held item in
the held quantity; a hold of another player, an expired, released or used one get the answers a
purchase naming it gets. And a drop: 200 players hold and pay at the (test) App Store for 50
units, three in ten never pay: exactly 50 sold, the walkers' units back on sale, no oversell."""

from __future__ import annotations

import concurrent.futures
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from shopkeep_server import db
from shopkeep_server.sandbox_store import SandboxAppStore
from shopkeep_server.store import holds, receipts, store_accounts
from shopkeep_server.store.audit import audit
from shopkeep_server.store.idempotency import IdempotencyKey, operation_fingerprint
from support import (
    Game,
    app_database_url,
    buy,
    coins_catalog,
    coins_item,
    inventory,
    make_config,
    make_game,
    new_key,
    post,
    snapshot,
)
from support import stores as s

DROP_PRODUCT = "com.example.drop"
PAIR_PRODUCT = "com.example.drop.pair"
COINS_PRODUCT = "com.example.coins"


def drop_catalog(*, stock: int, per_player_limit: int | None = None) -> dict[str, Any]:
    """A limited drop sold for coins and, through the App Store, for real money: products of
    one unit (and a few coins), of two units, and of coins only (no drop)."""
    catalog = coins_catalog(
        coins_item("drop", 100, stock=stock, per_player_limit=per_player_limit),
        coins_item("potion", 10),
    )
    catalog["products"] = [
        {
            "id": "drop_one",
            "store_ids": {"app_store": DROP_PRODUCT},
            "grants": {
                "items": [{"sku": "drop", "quantity": 1}],
                "currencies": [{"currency": "COINS", "amount": 5}],
            },
        },
        {
            "id": "drop_pair",
            "store_ids": {"app_store": PAIR_PRODUCT},
            "grants": {"items": [{"sku": "drop", "quantity": 2}]},
        },
        {
            "id": "coins",
            "store_ids": {"app_store": COINS_PRODUCT},
            "grants": {"currencies": [{"currency": "COINS", "amount": 100}]},
        },
    ]
    return catalog


@pytest.fixture(scope="module")
def apple() -> SandboxAppStore:
    return SandboxAppStore.create()


def sell_on_the_app_store(conn: psycopg.Connection, game: Game, apple: SandboxAppStore) -> None:
    store_accounts.put_account(
        conn,
        game.id,
        "app_store",
        {
            "bundle_id": s.BUNDLE_ID,
            "environment": "sandbox",
            "root_certificates": [apple.root_pem()],
        },
        actor="studio-1",
    )


@pytest.fixture
def shop(conn: psycopg.Connection, apple: SandboxAppStore) -> Game:
    game = make_game(conn, drop_catalog(stock=3, per_player_limit=2))
    sell_on_the_app_store(conn, game, apple)
    return game


def _hold(client: Any, game: Game, quantity: int = 1, *, sub: str = "p1") -> str:
    response = post(client, "/v1/holds", {"sku": "drop", "quantity": quantity}, game, sub=sub)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["hold"]["id"])


def _pay(
    client: Any,
    game: Game,
    apple: SandboxAppStore,
    hold_id: str,
    *,
    product: str = DROP_PRODUCT,
    sub: str = "p1",
    key: str | None = None,
    jws: str | None = None,
) -> Any:
    jws = jws or apple.transaction(bundle_id=s.BUNDLE_ID, product_id=product)
    body = {"store": "app_store", "signed_transaction": jws, "hold_id": hold_id}
    return post(client, "/v1/receipts", body, game, sub=sub, key=key)


def _in_buckets(conn: psycopg.Connection, game: Game) -> int:
    row = conn.execute(
        "SELECT sum(remaining) FROM stock_buckets WHERE game_id = %s AND sku = 'drop'",
        (game.id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _hold_row(conn: psycopg.Connection, hold_id: str) -> tuple[str, str | None]:
    row = conn.execute("SELECT status, consumed_by FROM holds WHERE id = %s", (hold_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


def _age(conn: psycopg.Connection, hold_id: str) -> None:
    conn.execute(
        "UPDATE holds SET created_at = created_at - interval '1 day',"
        " expires_at = expires_at - interval '1 day' WHERE id = %s",
        (hold_id,),
    )


def _code(response: Any) -> str:
    return str(response.get_json()["error"]["code"])


def _books_balance(conn: psycopg.Connection, game: Game) -> None:
    assert [line for line in audit(conn) if game.id in line] == []


def test_a_receipt_converts_the_hold_into_the_purchase_of_its_units(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    hold_id = _hold(client, shop)
    assert _in_buckets(conn, shop) == 2
    response = _pay(client, shop, apple, hold_id)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["granted"] == [{"sku": "drop", "quantity": 1}, {"currency": "COINS", "amount": 5}]
    assert inventory(client, shop) == {"drop": 1}
    # The hold's unit is the one sold: no unit is taken from the stock again.
    assert _in_buckets(conn, shop) == 2
    assert _hold_row(conn, hold_id) == ("consumed", f"receipt:{body['receipt']['id']}")
    seen = client.get(f"/v1/holds/{hold_id}", headers=shop.headers())
    assert seen.get_json()["hold"]["status"] == "consumed"
    # The per-player limit (2) counts the unit bought with the receipt: one more, not two.
    assert _hold(client, shop) != hold_id
    over = post(client, "/v1/holds", {"sku": "drop", "quantity": 1}, shop)
    assert (over.status_code, _code(over)) == (409, "purchase_limit_reached")
    assert over.get_json()["error"]["details"]["purchased"] == 1
    _books_balance(conn, shop)


def test_the_audit_checks_what_consumed_a_hold_by_receipt(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    hold_id = _hold(client, shop)
    receipt_id = _pay(client, shop, apple, hold_id).get_json()["receipt"]["id"]
    _books_balance(conn, shop)
    with conn.transaction(force_rollback=True):
        conn.execute("UPDATE holds SET quantity = 2 WHERE id = %s", (hold_id,))
        conn.execute(
            "UPDATE stock_buckets SET remaining = remaining - 1"
            " WHERE game_id = %s AND bucket = (SELECT min(bucket) FROM stock_buckets"
            " WHERE game_id = %s AND remaining > 0)",
            (shop.id, shop.id),
        )
        found = [line for line in audit(conn) if shop.id in line]
    assert found == [
        "a hold consumed by a receipt was consumed by that player's receipt granting its units:"
        f" hold {hold_id} ({shop.id}/p1, 2 x drop) consumed by receipt:{receipt_id}, which"
        ' granted [{"sku": "drop", "quantity": 1}, {"amount": 5, "currency": "COINS"}]'
    ]


def test_the_hold_must_be_the_products_item_in_its_quantity(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    hold_id = _hold(client, shop)
    before = snapshot(conn, shop.id)
    for product, message in [
        (COINS_PRODUCT, "the hold is for 1 x drop, which product coins does not grant"),
        (PAIR_PRODUCT, "the hold is for 1 x drop, which product drop_pair does not grant"),
    ]:
        refused = _pay(client, shop, apple, hold_id, product=product)
        assert (refused.status_code, _code(refused)) == (422, "validation_failed")
        assert refused.get_json()["error"]["details"] == {"hold_id": [message]}
        assert snapshot(conn, shop.id) == before
    malformed = post(
        client,
        "/v1/receipts",
        {"store": "app_store", "signed_transaction": "x.y.z", "hold_id": "nope"},
        shop,
    )
    assert (malformed.status_code, _code(malformed)) == (422, "validation_failed")
    assert "hold_id" in malformed.get_json()["error"]["details"]
    # The same transaction is credited once it names a hold the product converts.
    pair = _hold(client, shop, 2, sub="p2")
    assert _pay(client, shop, apple, pair, product=PAIR_PRODUCT, sub="p2").status_code == 201
    assert inventory(client, shop, sub="p2") == {"drop": 2}
    _books_balance(conn, shop)


def test_a_product_of_a_limited_item_needs_a_hold(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    """Credited without a hold, the drop's units would leave the store untaken from the stock:
    refused before anything is credited, and the same transaction goes through with a hold."""
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=DROP_PRODUCT)
    before = snapshot(conn, shop.id)
    unheld = post(client, "/v1/receipts", {"store": "app_store", "signed_transaction": jws}, shop)
    assert (unheld.status_code, _code(unheld)) == (422, "validation_failed")
    assert unheld.get_json()["error"]["details"] == {
        "hold_id": [
            "required: product drop_one grants the limited item drop, bought through a hold"
        ]
    }
    assert snapshot(conn, shop.id) == before
    assert _pay(client, shop, apple, _hold(client, shop), jws=jws).status_code == 201
    assert inventory(client, shop) == {"drop": 1}
    _books_balance(conn, shop)


def test_another_players_hold_is_not_found_and_nothing_changes(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    hold_id = _hold(client, shop, sub="p1")
    before = snapshot(conn, shop.id)
    theirs = _pay(client, shop, apple, hold_id, sub="p2")
    assert (theirs.status_code, _code(theirs)) == (404, "not_found")
    unknown = _pay(client, shop, apple, str(uuid.uuid4()))
    assert (unknown.status_code, _code(unknown)) == (404, "not_found")
    assert snapshot(conn, shop.id) == before
    assert _hold_row(conn, hold_id) == ("active", None)


@pytest.mark.parametrize("ending", ["expired", "released", "consumed"])
def test_an_ended_hold_is_refused_as_a_purchase_naming_it_is(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore, ending: str
) -> None:
    hold_id = _hold(client, shop)
    if ending == "expired":
        _age(conn, hold_id)
    elif ending == "released":
        client.delete(f"/v1/holds/{hold_id}", headers=shop.headers())
    else:
        assert _pay(client, shop, apple, hold_id).status_code == 201
    state = {k: v for k, v in snapshot(conn, shop.id).items() if k != "keys"}
    key = new_key()
    jws = apple.transaction(
        bundle_id=s.BUNDLE_ID, product_id=DROP_PRODUCT, transaction_id="7000001"
    )
    refused = _pay(client, shop, apple, hold_id, key=key, jws=jws)
    assert (refused.status_code, _code(refused)) == (409, "hold_expired")
    details = refused.get_json()["error"]["details"]
    assert (details["hold_id"], details["sku"], details["status"]) == (hold_id, "drop", ending)
    # What a purchase naming the same hold hears.
    bought = buy(client, shop, "drop", hold_id=hold_id)
    assert (bought.status_code, _code(bought)) == (409, "hold_expired")
    assert bought.get_json()["error"]["details"] == details
    assert {k: v for k, v in snapshot(conn, shop.id).items() if k != "keys"} == state
    # Final: stored with the key and replayed; the transaction itself stays unused.
    again = _pay(client, shop, apple, hold_id, key=key, jws=jws)
    assert (again.status_code, again.data) == (409, refused.data)
    assert again.headers["Idempotent-Replayed"] == "true"
    unused = conn.execute(
        "SELECT count(*) FROM receipts WHERE game_id = %s AND transaction_id = '7000001'",
        (shop.id,),
    ).fetchone()
    assert unused == (0,)
    _books_balance(conn, shop)


def test_the_receipt_that_takes_the_last_held_unit_sells_the_item_out(
    client: Any, conn: psycopg.Connection, apple: SandboxAppStore
) -> None:
    game = make_game(conn, drop_catalog(stock=1))
    sell_on_the_app_store(conn, game, apple)
    hold_id = _hold(client, game)
    assert _pay(client, game, apple, hold_id).status_code == 201
    sold_out = conn.execute(
        "SELECT data FROM events WHERE game_id = %s AND type = 'stock.sold_out'", (game.id,)
    ).fetchall()
    assert sold_out == [({"sku": "drop", "remaining": 0},)]
    _books_balance(conn, game)


# ---------------------------------------------------------------------------------------------
# A drop paid at the store: 200 players, 50 units, 30% never pay
# ---------------------------------------------------------------------------------------------


def _key(operation: str, **arguments: Any) -> IdempotencyKey:
    return IdempotencyKey(
        value=f"drop-{uuid.uuid4()}",
        fingerprint=operation_fingerprint(operation, **arguments),
        request_id="test-drop",
        ttl_seconds=86_400,
        wait_ms=5_000,
    )


@pytest.mark.slow
def test_two_hundred_players_hold_and_pay_at_the_store_for_fifty_units(
    committed_url: str, apple: SandboxAppStore
) -> None:
    """Each player holds one unit when the stock shows one; seven in ten then pay at the App
    Store and redeem the receipt naming the hold, three in ten walk away (their holds are
    placed for one second, so they expire while the drop runs and their units are sold to
    others). Every player who got a hold and paid gets the unit: no payer loses it."""
    stock = 50
    with db.connect(committed_url) as conn:
        game = make_game(conn, drop_catalog(stock=stock, per_player_limit=1))
        sell_on_the_app_store(conn, game, apple)
    fans = [f"fan-{n}" for n in range(200)]
    walks_away = {fan for n, fan in enumerate(fans) if n % 10 < 3}
    deadline = time.monotonic() + 120
    start = threading.Barrier(len(fans))
    config = make_config(app_database_url(committed_url))
    # Signing is the test's App Store, not the server: sign every payment up front.
    payments = {
        fan: apple.transaction(bundle_id=s.BUNDLE_ID, product_id=DROP_PRODUCT) for fan in fans
    }
    pool = ConnectionPool(
        app_database_url(committed_url),
        min_size=4,
        max_size=16,
        kwargs={"autocommit": True},
        open=True,
    )

    def run(work: Callable[[psycopg.Connection], Any]) -> Any:
        with pool.connection() as conn:
            return work(conn)

    def drop_state(conn: psycopg.Connection) -> tuple[int, int]:
        row = conn.execute(
            "SELECT sk_stock_remaining(%s, 'drop'),"
            " (SELECT count(*) FROM holds WHERE game_id = %s AND status = 'consumed')",
            (game.id, game.id),
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def play(fan: str) -> tuple[str, str | None]:
        walker = fan in walks_away
        rng = random.Random(fan)
        start.wait()
        while time.monotonic() < deadline:
            available, sold = run(drop_state)
            if sold >= stock:
                return "too late", None
            if available > 0:
                held = run(
                    lambda conn: holds.place_hold(
                        conn,
                        game.id,
                        fan,
                        sku="drop",
                        seconds=1 if walker else 600,
                        key=_key("hold", fan=fan),
                    )
                )
                body = json.loads(held.body)
                if held.status == 201:
                    hold_id = body["hold"]["id"]
                    if walker:
                        return "walked away", hold_id
                    proof = {
                        "store": "app_store",
                        "signed_transaction": payments[fan],
                        "hold_id": hold_id,
                    }
                    paid = receipts.redeem(
                        run, config, game.id, fan, proof, key=_key("receipt", fan=fan)
                    )
                    assert paid.status == 201, paid.body
                    return "bought", hold_id
                assert body["error"]["code"] == "sold_out", body
            time.sleep(rng.uniform(0.05, 0.2))
        return "timed out", None

    try:
        with concurrent.futures.ThreadPoolExecutor(len(fans)) as runner:
            endings = dict(zip(fans, runner.map(play, fans), strict=True))
    finally:
        pool.close()

    assert "timed out" not in [ending for ending, _ in endings.values()]
    buyers = {fan for fan, (ending, _) in endings.items() if ending == "bought"}
    walked = {fan for fan, (ending, _) in endings.items() if ending == "walked away"}
    assert len(buyers) == stock
    assert not buyers & walks_away
    assert walked, "some walkers held units before the drop sold out"
    with db.connect(committed_url) as conn:
        credited = conn.execute(
            "SELECT player_id, granted FROM receipts WHERE game_id = %s", (game.id,)
        ).fetchall()
        assert {player for player, _ in credited} == buyers
        assert len(credited) == stock
        owners = conn.execute(
            "SELECT player_id, quantity FROM inventories WHERE game_id = %s AND sku = 'drop'"
            " AND quantity > 0",
            (game.id,),
        ).fetchall()
        assert sorted(owners) == sorted((fan, 1) for fan in buyers)
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM holds WHERE game_id = %s GROUP BY 1", (game.id,)
            ).fetchall()
        )
        assert statuses == {"consumed": stock, "expired": len(walked)}
        consumed_by = conn.execute(
            "SELECT count(*) FROM holds h JOIN receipts r ON r.game_id = h.game_id"
            " AND r.player_id = h.player_id AND h.consumed_by = 'receipt:' || r.id"
            " WHERE h.game_id = %s",
            (game.id,),
        ).fetchone()
        assert consumed_by == (stock,)
        assert conn.execute(
            "SELECT sum(remaining), sk_stock_remaining(%s, 'drop') FROM stock_buckets"
            " WHERE game_id = %s",
            (game.id, game.id),
        ).fetchone() == (0, 0)
        sold_out = conn.execute(
            "SELECT count(*) FROM events WHERE game_id = %s AND type = 'stock.sold_out'",
            (game.id,),
        ).fetchone()
        assert sold_out == (1,)
        assert [line for line in audit(conn) if game.id in line] == []
