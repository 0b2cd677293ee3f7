"""Concurrency on the real stack: many threads, committed rows, exact final balances and stock."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid

import httpx
import psycopg
import pytest

from shopkeep_server.store.audit import audit
from support import LiveServer, coins_catalog, coins_item

pytestmark = pytest.mark.slow


def _buy(server: LiveServer, token: str, sku: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/purchases",
        json={"sku": sku},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"c-{uuid.uuid4()}"},
        timeout=60,
    )


def test_twenty_threads_on_one_wallet_buy_exactly_what_it_affords(live_server: LiveServer) -> None:
    game = live_server.new_game()
    affordable = 7
    game.grant("p1", "COINS", affordable * 50)
    token = game.token("player", "p1")
    start = threading.Barrier(20)

    def attempt(_: int) -> httpx.Response:
        start.wait()
        return _buy(live_server, token, "potion")

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(attempt, range(20)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * affordable + [409] * (20 - affordable)
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {
        "insufficient_funds"
    }
    with psycopg.connect(live_server.database_url) as conn:
        row = conn.execute(
            "SELECT balance FROM wallets WHERE game_id = %s AND currency = 'COINS'", (game.id,)
        ).fetchone()
        owned = conn.execute(
            "SELECT quantity FROM inventories WHERE game_id = %s AND sku = 'potion'", (game.id,)
        ).fetchone()
    assert row == (0,)
    assert owned == (affordable,)


def test_two_hundred_buyers_for_fifty_units(live_server: LiveServer) -> None:
    stock = 50
    game = live_server.new_game(
        coins_catalog(coins_item("drop", 100, kind="durable", stock=stock, per_player_limit=1))
    )
    buyers = [f"buyer-{n}" for n in range(200)]
    with psycopg.connect(live_server.database_url) as conn:
        buckets = conn.execute(
            "SELECT count(*), sum(remaining) FROM stock_buckets WHERE game_id = %s", (game.id,)
        ).fetchone()
        assert buckets is not None and buckets[0] > 1 and buckets[1] == stock
        # Fund the buyers directly: the test is about the purchases, not 200 grants.
        for buyer in buyers:
            conn.execute(
                "INSERT INTO wallets (game_id, player_id, currency) VALUES (%s, %s, 'COINS')",
                (game.id, buyer),
            )
            conn.execute(
                "SELECT sk_wallet_change(%s, %s, 'COINS', 100, NULL, 'grant', 'test')",
                (game.id, buyer),
            )
        conn.commit()
    tokens = [game.token("player", buyer) for buyer in buyers]
    start = threading.Barrier(50)

    def attempt(token: str) -> httpx.Response:
        if tokens.index(token) < 50:
            start.wait()
        return _buy(live_server, token, "drop")

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(attempt, tokens))

    sold = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 409]
    assert len(sold) == stock
    assert len(refused) == 200 - stock
    assert {r.json()["error"]["code"] for r in refused} == {"sold_out"}
    with psycopg.connect(live_server.database_url) as conn:
        remaining = conn.execute(
            "SELECT sum(remaining) FROM stock_buckets WHERE game_id = %s", (game.id,)
        ).fetchone()
        purchases = conn.execute(
            "SELECT count(*), count(DISTINCT player_id) FROM purchases WHERE game_id = %s",
            (game.id,),
        ).fetchone()
        spent = conn.execute(
            "SELECT count(*) FROM wallets WHERE game_id = %s AND balance = 0", (game.id,)
        ).fetchone()
        assert remaining == (0,)
        assert purchases == (stock, stock)
        assert spent == (stock,)
        assert [v for v in audit(conn) if game.id in v] == []
