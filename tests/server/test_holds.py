"""Holds on limited items: units set aside for one player while the player pays, bought by
naming the hold, back on sale by themselves when the hold expires.

Fast tests run in one rolled-back transaction, where now() never moves: a hold "expires" there
by having its timeline moved into the past (``_age``), as if it had been placed long ago. The
drop at the end commits, and its abandoned holds really expire (placed for one second).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import random
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

import shopkeep
from shopkeep_server import db, roles
from shopkeep_server.app import create_app
from shopkeep_server.config import Config, ConfigError
from shopkeep_server.metrics import Metrics
from shopkeep_server.serving import Janitor
from shopkeep_server.store import holds, players
from shopkeep_server.store.audit import audit
from shopkeep_server.store.idempotency import IdempotencyKey, operation_fingerprint
from shopkeep_server.store.rules import MAX_HELD_UNITS
from support import (
    ROOT,
    Game,
    LiveServer,
    app_database_url,
    buy,
    coins_catalog,
    coins_item,
    grant,
    make_config,
    make_game,
    new_key,
    post,
    snapshot,
)

DAY = dt.timedelta(days=1)


@pytest.fixture
def shop(conn: psycopg.Connection) -> Game:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def at(moment: dt.datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    return make_game(
        conn,
        coins_catalog(
            coins_item("drop", 100, stock=3),
            coins_item("capped", 10, stock=10, per_player_limit=2),
            coins_item("relic", 50, kind="durable", stock=5),
            coins_item("plenty", 1, stock=100),
            coins_item("potion", 50),
            coins_item(
                "closed",
                50,
                stock=1,
                available_from=at(now - 2 * DAY),
                available_until=at(now - DAY),
            ),
        ),
    )


def _hold(client: Any, game: Game, sku: str, quantity: int = 1, *, sub: str = "p1", key=None):
    return post(client, "/v1/holds", {"sku": sku, "quantity": quantity}, game, sub=sub, key=key)


def _placed(client: Any, game: Game, sku: str, quantity: int = 1, *, sub: str = "p1") -> str:
    response = _hold(client, game, sku, quantity, sub=sub)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["hold"]["id"])


def _code(response: Any) -> str:
    return str(response.get_json()["error"]["code"])


def _available(client: Any, game: Game, sku: str) -> int:
    response = client.get(f"/v1/stock?sku={sku}", headers=game.headers("player", "p1"))
    assert response.status_code == 200
    return int(response.get_json()["stock"][0]["remaining"])


def _in_buckets(conn: psycopg.Connection, game: Game, sku: str) -> int:
    row = conn.execute(
        "SELECT sum(remaining) FROM stock_buckets WHERE game_id = %s AND sku = %s", (game.id, sku)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _stored_status(conn: psycopg.Connection, hold_id: str) -> str:
    row = conn.execute("SELECT status FROM holds WHERE id = %s", (hold_id,)).fetchone()
    assert row is not None
    return str(row[0])


def _age(conn: psycopg.Connection, hold_id: str, *, by: dt.timedelta = DAY) -> None:
    """Moves a hold's whole timeline ``by`` into the past: placed long ago, expired since."""
    conn.execute(
        "UPDATE holds SET created_at = created_at - %(by)s, expires_at = expires_at - %(by)s,"
        " ended_at = ended_at - %(by)s WHERE id = %(id)s",
        {"by": by, "id": hold_id},
    )


def _books_balance(conn: psycopg.Connection, game: Game) -> None:
    assert [line for line in audit(conn) if game.id in line] == []


# ---------------------------------------------------------------------------------------------
# A hold reserves
# ---------------------------------------------------------------------------------------------


def test_a_hold_reserves_its_units_for_its_player(client, conn, shop: Game) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    grant(client, shop, "p2", "COINS", 1000)
    response = _hold(client, shop, "drop", 3)
    assert response.status_code == 201
    hold = response.get_json()["hold"]
    assert (hold["sku"], hold["quantity"], hold["status"]) == ("drop", 3, "active")
    expires = dt.datetime.fromisoformat(hold["expires_at"])
    created = dt.datetime.fromisoformat(hold["created_at"])
    assert expires - created == dt.timedelta(seconds=600)  # SHOPKEEP_HOLD_SECONDS' default
    # Held units are not available to anyone else.
    assert _available(client, shop, "drop") == 0
    assert _in_buckets(conn, shop, "drop") == 0
    assert _code(buy(client, shop, "drop", sub="p2")) == "sold_out"
    assert _code(_hold(client, shop, "drop", sub="p2")) == "sold_out"
    # The holder buys them with the hold: the units come from the hold, not the free stock.
    bought = buy(client, shop, "drop", quantity=3, hold_id=hold["id"])
    assert bought.status_code == 201, bought.get_json()
    assert bought.get_json()["purchase"]["quantity"] == 3
    assert bought.get_json()["balances"] == [{"currency": "COINS", "amount": 700}]
    seen = client.get(f"/v1/holds/{hold['id']}", headers=shop.headers("player", "p1"))
    assert seen.status_code == 200
    assert seen.get_json()["hold"]["status"] == "consumed"
    purchase_id = bought.get_json()["purchase"]["id"]
    row = conn.execute("SELECT consumed_by FROM holds WHERE id = %s", (hold["id"],)).fetchone()
    assert row == (f"purchase:{purchase_id}",)
    assert _available(client, shop, "drop") == 0
    assert _in_buckets(conn, shop, "drop") == 0
    # A used hold cannot buy again.
    again = buy(client, shop, "drop", quantity=3, hold_id=hold["id"])
    assert (again.status_code, _code(again)) == (409, "hold_expired")
    assert again.get_json()["error"]["details"]["status"] == "consumed"
    _books_balance(conn, shop)


def test_a_released_hold_frees_its_units_at_once(client, conn, shop: Game) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    grant(client, shop, "p2", "COINS", 1000)
    hold_id = _placed(client, shop, "drop", 2)
    assert _available(client, shop, "drop") == 1
    released = client.delete(f"/v1/holds/{hold_id}", headers=shop.headers("player", "p1"))
    assert released.status_code == 200
    assert released.get_json()["hold"]["status"] == "released"
    assert _available(client, shop, "drop") == 3
    assert _in_buckets(conn, shop, "drop") == 3
    # Releasing again changes nothing and says the same.
    twice = client.delete(f"/v1/holds/{hold_id}", headers=shop.headers("player", "p1"))
    assert twice.status_code == 200
    assert twice.get_json() == released.get_json()
    assert _in_buckets(conn, shop, "drop") == 3
    # The units are anyone's again; the released hold buys nothing.
    assert buy(client, shop, "drop", sub="p2", quantity=3).status_code == 201
    stale = buy(client, shop, "drop", quantity=2, hold_id=hold_id)
    assert (stale.status_code, _code(stale)) == (409, "hold_expired")
    assert stale.get_json()["error"]["details"] == {
        "hold_id": hold_id,
        "sku": "drop",
        "status": "released",
        "expires_at": released.get_json()["hold"]["expires_at"],
    }
    _books_balance(conn, shop)


def test_an_expired_hold_cannot_be_used_and_frees_its_units(client, conn, shop: Game) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    grant(client, shop, "p2", "COINS", 1000)
    hold_id = _placed(client, shop, "drop", 2)
    assert _available(client, shop, "drop") == 1
    _age(conn, hold_id)
    # Its units are on sale again at once, before any job or buyer has touched them.
    assert _available(client, shop, "drop") == 3
    assert _in_buckets(conn, shop, "drop") == 1
    seen = client.get(f"/v1/holds/{hold_id}", headers=shop.headers("player", "p1"))
    assert seen.get_json()["hold"]["status"] == "expired"
    before = snapshot(conn, shop.id)
    late = buy(client, shop, "drop", quantity=2, hold_id=hold_id)
    assert (late.status_code, _code(late)) == (409, "hold_expired")
    assert late.get_json()["error"]["details"]["status"] == "expired"
    assert {k: v for k, v in snapshot(conn, shop.id).items() if k != "keys"} == {
        k: v for k, v in before.items() if k != "keys"
    }
    # Another buyer gets all three: the take that needs them puts the expired units back.
    assert buy(client, shop, "drop", sub="p2", quantity=3).status_code == 201
    assert _stored_status(conn, hold_id) == "expired"
    assert _available(client, shop, "drop") == 0
    assert _code(buy(client, shop, "drop", quantity=2, hold_id=hold_id)) == "hold_expired"
    _books_balance(conn, shop)


def test_an_expired_hold_is_put_back_by_a_hold_and_by_its_release(client, conn, shop) -> None:
    first = _placed(client, shop, "drop", 3, sub="p1")
    _age(conn, first)
    # Placing a hold is a take like a purchase: it reclaims the expired units it needs.
    second = _placed(client, shop, "drop", 3, sub="p2")
    assert _stored_status(conn, first) == "expired"
    _age(conn, second)
    # Releasing a hold that has expired ends it as expired and puts its units back too.
    released = client.delete(f"/v1/holds/{second}", headers=shop.headers("player", "p2"))
    assert released.get_json()["hold"]["status"] == "expired"
    assert _in_buckets(conn, shop, "drop") == 3
    _books_balance(conn, shop)


def test_the_janitor_puts_expired_units_back_and_deletes_ended_holds(
    client, conn, shop: Game
) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    used = _placed(client, shop, "drop", 1)
    assert buy(client, shop, "drop", hold_id=used).status_code == 201
    expired = _placed(client, shop, "drop", 1)
    released = _placed(client, shop, "drop", 1, sub="p2")
    client.delete(f"/v1/holds/{released}", headers=shop.headers("player", "p2"))
    _age(conn, expired)
    returned, _ = holds.tidy(conn, keep_seconds=3600)
    assert returned >= 1  # other games' expired holds may be put back too
    assert _stored_status(conn, expired) == "expired"
    assert _in_buckets(conn, shop, "drop") == 2
    # Ended longer ago than kept: deleted, except the consumed hold, the record of a sale.
    for hold_id in (expired, released, used):
        _age(conn, hold_id, by=dt.timedelta(hours=2))
    holds.tidy(conn, keep_seconds=3600)
    remaining = conn.execute("SELECT id::text FROM holds WHERE game_id = %s", (shop.id,)).fetchall()
    assert remaining == [(used,)]
    _books_balance(conn, shop)


def test_the_audit_counts_held_units_and_checks_what_consumed_a_hold(
    client, conn, shop: Game
) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    held = _placed(client, shop, "drop", 1)
    used = _placed(client, shop, "drop", 1)
    bought = buy(client, shop, "drop", hold_id=used)
    _books_balance(conn, shop)
    # A hold ended without giving its unit back: the stock no longer adds up.
    conn.execute("UPDATE holds SET status = 'released', ended_at = now() WHERE id = %s", (held,))
    lost = [line for line in audit(conn) if shop.id in line]
    assert lost == [
        f"limited stock: initial + restocks - sold - held = remaining: stock {shop.id}/drop:"
        " initial 3 + restocked 0 - sold 1 - held 0 = 2, but 1 remain"
    ]
    conn.execute("UPDATE holds SET status = 'active', ended_at = NULL WHERE id = %s", (held,))
    # A hold said to be consumed by a purchase that bought something else.
    purchase_id = bought.get_json()["purchase"]["id"]
    conn.execute(
        "UPDATE purchases SET quantity = 2, total_price = 200 WHERE id = %s", (purchase_id,)
    )
    mismatched = [line for line in audit(conn) if "consumed by" in line and shop.id in line]
    assert mismatched == [
        "a hold consumed by a purchase was consumed by that player's purchase of its units:"
        f" hold {used} ({shop.id}/p1, 1 x drop) consumed by purchase:{purchase_id},"
        " which bought 2 x drop"
    ]


def test_the_servers_janitor_tidies_holds_as_the_app_role(database_url: str) -> None:
    with db.connect(database_url) as owner:
        game = make_game(owner, coins_catalog(coins_item("drop", 100, stock=4)))
    with db.connect(app_database_url(database_url)) as conn:
        placed = [
            json.loads(
                holds.place_hold(
                    conn, game.id, player, sku="drop", seconds=600, key=_key("hold", p=player)
                ).body
            )["hold"]["id"]
            for player in ("p1", "p2")
        ]
    with db.connect(database_url) as owner:
        # p1's hold expired a minute ago; p2's ended two days ago (longer than keys are kept).
        owner.execute(
            "UPDATE holds SET created_at = created_at - interval '1 hour',"
            " expires_at = now() - interval '1 minute' WHERE id = %s",
            (placed[0],),
        )
        owner.execute(
            "UPDATE holds SET status = 'expired', created_at = now() - interval '3 days',"
            " expires_at = now() - interval '2 days', ended_at = now() - interval '2 days'"
            " WHERE id = %s",
            (placed[1],),
        )
        owner.execute("SELECT sk_return_stock(%s, 'drop', 1)", (game.id,))
        Janitor(make_config(app_database_url(database_url)), Metrics()).tidy_holds()
        left = owner.execute(
            "SELECT id::text, status FROM holds WHERE game_id = %s", (game.id,)
        ).fetchall()
        assert left == [(placed[0], "expired")]
        assert owner.execute(
            "SELECT sum(remaining) FROM stock_buckets WHERE game_id = %s", (game.id,)
        ).fetchone() == (4,)
        assert [line for line in audit(owner) if game.id in line] == []


# ---------------------------------------------------------------------------------------------
# The per-player limit, the cap, keys and owners
# ---------------------------------------------------------------------------------------------


def test_a_hold_holds_the_per_player_limit_slot(client, conn, shop: Game) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    hold_id = _placed(client, shop, "capped", 2)
    # Both slots are held: no more units, with or without a hold.
    over = buy(client, shop, "capped")
    assert (over.status_code, _code(over)) == (409, "purchase_limit_reached")
    assert over.get_json()["error"]["details"] == {
        "sku": "capped",
        "limit": 2,
        "purchased": 0,
        "held": 2,
    }
    another = _hold(client, shop, "capped")
    assert _code(another) == "purchase_limit_reached"
    assert another.get_json()["error"]["details"] == {
        "sku": "capped",
        "limit": 2,
        "purchased": 0,
        "held": 2,
    }
    assert buy(client, shop, "capped", quantity=2, hold_id=hold_id).status_code == 201
    after = _hold(client, shop, "capped")
    assert after.get_json()["error"]["details"] == {
        "sku": "capped",
        "limit": 2,
        "purchased": 2,
        "held": 0,
    }
    # A released hold gives its slot back as well as its units.
    grant(client, shop, "p2", "COINS", 1000)
    held = _placed(client, shop, "capped", 2, sub="p2")
    client.delete(f"/v1/holds/{held}", headers=shop.headers("player", "p2"))
    assert buy(client, shop, "capped", sub="p2", quantity=2).status_code == 201
    _books_balance(conn, shop)


def test_a_hold_leaves_the_refund_of_an_item_without_a_limit_alone(client, conn, shop) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    hold_id = _placed(client, shop, "drop", 1)
    client.delete(f"/v1/holds/{hold_id}", headers=shop.headers("player", "p1"))
    bought = buy(client, shop, "drop")
    assert bought.status_code == 201
    refunded = post(
        client,
        f"/v1/purchases/{bought.get_json()['purchase']['id']}/refund",
        {"reason": "support"},
        shop,
        role="service",
        sub="backend",
    )
    assert refunded.status_code == 200, refunded.get_json()
    assert refunded.get_json()["purchase"]["status"] == "refunded"
    _books_balance(conn, shop)


def test_a_durable_is_held_once(client, shop: Game) -> None:
    assert _code(_hold(client, shop, "relic", 2)) == "purchase_limit_reached"
    _placed(client, shop, "relic")
    assert _code(_hold(client, shop, "relic")) == "purchase_limit_reached"


def test_one_player_holds_at_most_the_cap_of_one_item(client, shop: Game) -> None:
    _placed(client, shop, "plenty", MAX_HELD_UNITS - 1)
    over = _hold(client, shop, "plenty", 2)
    assert (over.status_code, _code(over)) == (409, "hold_limit_reached")
    assert over.get_json()["error"]["details"] == {
        "sku": "plenty",
        "limit": MAX_HELD_UNITS,
        "held": MAX_HELD_UNITS - 1,
    }
    _placed(client, shop, "plenty", 1)
    # Another player, and another item, have caps of their own.
    _placed(client, shop, "plenty", MAX_HELD_UNITS, sub="p2")
    _placed(client, shop, "drop", 1)


def test_the_hold_length_is_the_servers_setting(conn: psycopg.Connection, shop: Game) -> None:
    assert Config.from_env({}).hold_seconds == 600
    assert Config.from_env({"SHOPKEEP_HOLD_SECONDS": "42"}).hold_seconds == 42
    with pytest.raises(ConfigError, match="SHOPKEEP_HOLD_SECONDS must be at least 1"):
        Config.from_env({"SHOPKEEP_HOLD_SECONDS": "0"})
    app = create_app(
        make_config(hold_seconds=42),
        database=db.SingleConnectionDatabase(conn, role=roles.APP_ROLE),
    )
    hold = _hold(app.test_client(), shop, "drop").get_json()["hold"]
    length = dt.datetime.fromisoformat(hold["expires_at"]) - dt.datetime.fromisoformat(
        hold["created_at"]
    )
    assert length == dt.timedelta(seconds=42)


def test_the_contract_states_the_servers_cap() -> None:
    api = (ROOT / "docs" / "api.md").read_text()
    assert f"more than {MAX_HELD_UNITS} units of the item at once" in api
    assert api.count(f"{MAX_HELD_UNITS} units") == 2


def test_a_hold_replays_by_its_idempotency_key(client, conn, shop: Game) -> None:
    key = new_key()
    first = _hold(client, shop, "drop", 2, key=key)
    again = _hold(client, shop, "drop", 2, key=key)
    assert first.status_code == again.status_code == 201
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    rows = conn.execute("SELECT count(*) FROM holds WHERE game_id = %s", (shop.id,)).fetchone()
    assert rows == (1,)
    assert _in_buckets(conn, shop, "drop") == 1
    other = _hold(client, shop, "drop", 1, key=key)
    assert (other.status_code, _code(other)) == (422, "idempotency_key_reused")


def test_another_player_can_neither_see_nor_use_nor_release_my_hold(
    client, conn, shop: Game
) -> None:
    grant(client, shop, "p2", "COINS", 1000)
    hold_id = _placed(client, shop, "drop", 2, sub="p1")
    before = snapshot(conn, shop.id)
    theirs = shop.headers("player", "p2")
    assert client.get(f"/v1/holds/{hold_id}", headers=theirs).status_code == 404
    assert client.delete(f"/v1/holds/{hold_id}", headers=theirs).status_code == 404
    used = buy(client, shop, "drop", sub="p2", quantity=2, hold_id=hold_id)
    assert (used.status_code, _code(used)) == (404, "not_found")
    assert snapshot(conn, shop.id) == before
    assert _stored_status(conn, hold_id) == "active"
    unknown = uuid.uuid4()
    assert client.get(f"/v1/holds/{unknown}", headers=theirs).status_code == 404
    assert client.get("/v1/holds/not-a-uuid", headers=theirs).status_code == 404


def test_a_hold_names_exactly_what_is_bought(client, conn, shop: Game) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    hold_id = _placed(client, shop, "drop", 2)
    before = snapshot(conn, shop.id)
    wrong_quantity = buy(client, shop, "drop", quantity=1, hold_id=hold_id)
    assert (wrong_quantity.status_code, _code(wrong_quantity)) == (422, "validation_failed")
    assert wrong_quantity.get_json()["error"]["details"] == {
        "hold_id": ["the hold is for 2 x drop, not 1 x drop"]
    }
    wrong_sku = buy(client, shop, "plenty", quantity=2, hold_id=hold_id)
    assert _code(wrong_sku) == "validation_failed"
    malformed = buy(client, shop, "drop", quantity=2, hold_id="nope")
    assert _code(malformed) == "validation_failed"
    assert "hold_id" in malformed.get_json()["error"]["details"]
    assert snapshot(conn, shop.id) == before


# ---------------------------------------------------------------------------------------------
# Refusals change nothing
# ---------------------------------------------------------------------------------------------


def test_nothing_changes_on_any_refusal(client, conn, shop: Game) -> None:
    grant(client, shop, "p1", "COINS", 1000)
    _placed(client, shop, "capped", 2)
    _placed(client, shop, "plenty", MAX_HELD_UNITS)
    _placed(client, shop, "relic")
    taken = _placed(client, shop, "drop", 3, sub="p2")
    expired = _placed(client, shop, "plenty", 1, sub="p3")
    _age(conn, expired)

    def unchanged(response: Any, status: int, code: str) -> None:
        assert (response.status_code, _code(response)) == (status, code)

    refusals = [
        (lambda: _hold(client, shop, "no_such_item"), 404, "not_found"),
        (lambda: _hold(client, shop, "potion"), 422, "validation_failed"),
        (lambda: _hold(client, shop, "closed"), 409, "item_unavailable"),
        (lambda: _hold(client, shop, "drop"), 409, "sold_out"),
        (lambda: _hold(client, shop, "capped"), 409, "purchase_limit_reached"),
        (lambda: _hold(client, shop, "relic"), 409, "purchase_limit_reached"),
        (lambda: _hold(client, shop, "plenty"), 409, "hold_limit_reached"),
        (lambda: buy(client, shop, "drop", quantity=3, hold_id=taken), 404, "not_found"),
        (lambda: buy(client, shop, "plenty", sub="p3", hold_id=expired), 409, "hold_expired"),
        (lambda: buy(client, shop, "capped"), 409, "purchase_limit_reached"),
    ]
    for send, status, code in refusals:
        before = snapshot(conn, shop.id)
        unchanged(send(), status, code)
        after = snapshot(conn, shop.id)
        assert {k: v for k, v in after.items() if k != "keys"} == {
            k: v for k, v in before.items() if k != "keys"
        }, code
    _books_balance(conn, shop)


# ---------------------------------------------------------------------------------------------
# The SDK against the live server
# ---------------------------------------------------------------------------------------------


def test_the_sdk_holds_buys_and_releases(live_server: LiveServer) -> None:
    game = live_server.new_game(coins_catalog(coins_item("egg", 100, stock=2)))
    game.grant("p1", "COINS", 300)
    with shopkeep.StoreClient(live_server.url, game.token("player", "p1")) as client:
        hold = client.place_hold("egg", 2)
        assert (hold.sku, hold.quantity, hold.status) == ("egg", 2, "active")
        assert client.stock(["egg"])[0].remaining == 0
        assert client.get_hold(hold.id) == hold
        bought = client.purchase("egg", quantity=2, hold_id=hold.id)
        assert bought.purchase.quantity == 2
        assert client.get_hold(hold.id).status == "consumed"
        with pytest.raises(shopkeep.HoldExpired) as refused:
            client.purchase("egg", quantity=2, hold_id=hold.id)
        assert refused.value.details["status"] == "consumed"
        with pytest.raises(shopkeep.NotFound):
            client.get_hold(str(uuid.uuid4()))


def test_the_async_sdk_holds_and_releases(live_server: LiveServer) -> None:
    import asyncio

    game = live_server.new_game(coins_catalog(coins_item("egg", 100, stock=12)))

    async def run() -> None:
        async with shopkeep.AsyncStoreClient(live_server.url, game.token("player", "p1")) as client:
            hold = await client.place_hold("egg", MAX_HELD_UNITS)
            with pytest.raises(shopkeep.HoldLimitReached):
                await client.place_hold("egg", 1)
            assert (await client.stock(["egg"]))[0].remaining == 12 - MAX_HELD_UNITS
            released = await client.release_hold(hold.id)
            assert released.status == "released"
            assert (await client.get_hold(hold.id)).status == "released"
            assert (await client.stock(["egg"]))[0].remaining == 12

    asyncio.run(run())


@pytest.mark.slow
def test_one_players_concurrent_holds_never_pass_the_cap_or_the_limit(database_url: str) -> None:
    with db.connect(database_url) as owner:
        game = make_game(
            owner,
            coins_catalog(
                coins_item("crate", 1, stock=100),
                coins_item("capped", 1, stock=100, per_player_limit=2),
            ),
        )
    start = threading.Barrier(8, timeout=60)
    app_url = app_database_url(database_url)

    def attempt(sku: str, quantity: int) -> str:
        with db.connect(app_url) as conn:
            start.wait()
            outcome = holds.place_hold(
                conn, game.id, "p1", sku=sku, quantity=quantity, seconds=600, key=_key("hold")
            )
        body = json.loads(outcome.body)
        return "held" if outcome.status == 201 else str(body["error"]["code"])

    with concurrent.futures.ThreadPoolExecutor(8) as runner:
        crates = sorted(runner.map(lambda _: attempt("crate", 3), range(8)))
        capped = sorted(runner.map(lambda _: attempt("capped", 1), range(8)))
    # 10 units at most per player: three holds of 3; two slots of the limit: two holds of 1.
    assert crates == ["held"] * 3 + ["hold_limit_reached"] * 5
    assert capped == ["held"] * 2 + ["purchase_limit_reached"] * 6
    with db.connect(database_url) as owner:
        assert owner.execute(
            "SELECT sum(remaining) FROM stock_buckets WHERE game_id = %s GROUP BY sku ORDER BY sku",
            (game.id,),
        ).fetchall() == [(98,), (91,)]
        assert [line for line in audit(owner) if game.id in line] == []


# ---------------------------------------------------------------------------------------------
# A drop: 200 players hold and pay for 50 units, 30% never pay
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
def test_two_hundred_players_hold_and_pay_for_fifty_units(committed_url: str) -> None:
    """Each player watches the stock and holds one unit when any is available; seven in ten
    then pay with the hold at once, three in ten walk away. The walkers' holds are placed for
    one second (the server's length is SHOPKEEP_HOLD_SECONDS), so they expire while the drop
    runs and their units go back on sale by themselves, to be held and bought by others."""
    stock = 50
    with db.connect(committed_url) as conn:
        game = make_game(
            conn,
            coins_catalog(coins_item("drop", 100, kind="durable", stock=stock, per_player_limit=1)),
        )
        fans = [f"fan-{n}" for n in range(200)]
        for fan in fans:  # funded directly: the test is about the holds, not 200 grants
            conn.execute(
                "INSERT INTO wallets (game_id, player_id, currency) VALUES (%s, %s, 'COINS')",
                (game.id, fan),
            )
            conn.execute(
                "SELECT sk_wallet_change(%s, %s, 'COINS', 100, NULL, 'grant', 'test')",
                (game.id, fan),
            )
    walks_away = {fan for n, fan in enumerate(fans) if n % 10 < 3}
    deadline = time.monotonic() + 120
    start = threading.Barrier(len(fans))
    pool = ConnectionPool(
        app_database_url(committed_url),
        min_size=4,
        max_size=16,
        kwargs={"autocommit": True},
        open=True,
    )

    def drop_state(conn: psycopg.Connection) -> tuple[int, int]:
        row = conn.execute(
            "SELECT sk_stock_remaining(%s, 'drop'),"
            " (SELECT count(*) FROM purchases WHERE game_id = %s)",
            (game.id, game.id),
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def play(fan: str) -> tuple[str, str | None]:
        """(how the fan's drop ended, the hold the fan placed)."""
        walker = fan in walks_away
        rng = random.Random(fan)
        start.wait()
        while time.monotonic() < deadline:
            with pool.connection() as conn:
                available, sold = drop_state(conn)
                if sold >= stock:
                    return "too late", None
                if available > 0:
                    # No retry: holds and takes lock in one order (31_holds.sql), so no
                    # deadlock can come of them (the server would retry one; this must not).
                    held = holds.place_hold(
                        conn,
                        game.id,
                        fan,
                        sku="drop",
                        seconds=1 if walker else 600,
                        key=_key("hold", fan=fan, sku="drop"),
                    )
                    body = json.loads(held.body)
                    if held.status == 201:
                        hold_id = body["hold"]["id"]
                        if walker:
                            return "walked away", hold_id
                        paid = players.purchase(
                            conn,
                            game.id,
                            fan,
                            sku="drop",
                            hold_id=hold_id,
                            key=_key("purchase", fan=fan, hold_id=hold_id),
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

    outcomes = [ending for ending, _ in endings.values()]
    assert "timed out" not in outcomes
    buyers = {fan for fan, (ending, _) in endings.items() if ending == "bought"}
    walked = {fan: hold for fan, (ending, hold) in endings.items() if ending == "walked away"}
    assert len(buyers) == stock
    assert not buyers & walks_away
    assert walked, "some walkers held units before the drop sold out"
    with db.connect(committed_url) as conn:
        sold = conn.execute(
            "SELECT count(*), count(DISTINCT player_id), sum(quantity) FROM purchases"
            " WHERE game_id = %s",
            (game.id,),
        ).fetchone()
        assert sold == (stock, stock, stock)
        bought_by = conn.execute(
            "SELECT player_id FROM purchases WHERE game_id = %s", (game.id,)
        ).fetchall()
        assert {fan for (fan,) in bought_by} == buyers
        # Every walker's hold expired and its unit was sold to someone else: nothing is held,
        # nothing is left, nothing was sold twice.
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM holds WHERE game_id = %s GROUP BY 1", (game.id,)
            ).fetchall()
        )
        assert statuses == {"consumed": stock, "expired": len(walked)}
        assert conn.execute(
            "SELECT sum(remaining), sk_stock_remaining(%s, 'drop') FROM stock_buckets"
            " WHERE game_id = %s",
            (game.id, game.id),
        ).fetchone() == (0, 0)
        spent = conn.execute(
            "SELECT count(*) FROM wallets WHERE game_id = %s AND balance = 0", (game.id,)
        ).fetchone()
        assert spent == (stock,)
        assert [line for line in audit(conn) if game.id in line] == []
