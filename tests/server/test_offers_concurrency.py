"""Personalized offers under concurrency, on committed rows: a promo code's budget counted
exactly, and a sale that ends while a purchase is in flight."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from shopkeep_server import db
from shopkeep_server.app import create_app
from shopkeep_server.runtime import fingerprint
from shopkeep_server.store.audit import audit
from support import LiveServer, coins_catalog, coins_item, make_config, make_game

pytestmark = pytest.mark.slow


def test_two_hundred_redemptions_of_a_code_with_a_budget_of_fifty(
    live_server: LiveServer,
) -> None:
    game = live_server.new_game(
        {
            **coins_catalog(coins_item("potion", 10)),
            "promo_codes": [
                {"code": "LAUNCH50", "grant": [{"currency": "COINS", "amount": 10}], "budget": 50}
            ],
        }
    )
    tokens = [game.token("player", f"fan-{n}") for n in range(200)]
    start = threading.Barrier(50)

    def attempt(index: int) -> httpx.Response:
        if index < 50:
            start.wait()
        return httpx.post(
            f"{live_server.url}/v1/promo-codes/redeem",
            json={"code": "LAUNCH50"},
            headers={
                "Authorization": f"Bearer {tokens[index]}",
                "Idempotency-Key": f"redeem-{uuid.uuid4()}",
            },
            timeout=60,
        )

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(attempt, range(200)))

    redeemed = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 409]
    assert len(redeemed) == 50
    assert len(refused) == 150
    assert {r.json()["error"]["code"] for r in refused} == {"code_exhausted"}
    with psycopg.connect(live_server.database_url) as conn:
        assert conn.execute(
            "SELECT redeemed, budget FROM promo_code_budgets WHERE game_id = %s", (game.id,)
        ).fetchone() == (50, 50)
        assert conn.execute(
            "SELECT count(*), count(DISTINCT player_id) FROM promo_redemptions WHERE game_id = %s",
            (game.id,),
        ).fetchone() == (50, 50)
        assert conn.execute(
            "SELECT count(*), sum(balance) FROM wallets WHERE game_id = %s AND balance > 0",
            (game.id,),
        ).fetchone() == (50, 500)
        assert [v for v in audit(conn) if game.id in v] == []


@pytest.fixture
def pooled_client(committed_url: str) -> Iterator[Any]:
    app = create_app(make_config(committed_url))
    try:
        yield app.test_client()
    finally:
        app.extensions["shopkeep"].db.close()


def test_a_sale_that_ends_mid_flight_charges_the_shown_price_or_refuses(
    committed_url: str, pooled_client: Any
) -> None:
    with db.connect(committed_url) as conn:
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        ends_at = now + dt.timedelta(seconds=2)
        game = make_game(
            conn,
            {
                **coins_catalog(coins_item("potion", 100)),
                "offers": [
                    {
                        "id": "flash",
                        "sku": "potion",
                        "discount_percent": 50,
                        "ends_at": ends_at.isoformat(),
                    }
                ],
            },
        )
        conn.execute(
            "INSERT INTO wallets (game_id, player_id, currency) VALUES (%s, 'p1', 'COINS')",
            (game.id,),
        )
        conn.execute(
            "SELECT sk_wallet_change(%s, 'p1', 'COINS', 1000, NULL, 'grant', 'test')", (game.id,)
        )
        conn.commit()
    view = pooled_client.get("/v1/catalog", headers=game.headers("player", "p1")).get_json()
    shown = view["items"][0]["price_for_you"][0]
    assert shown == {"currency": "COINS", "amount": 50, "offer_id": "flash"}
    expected = {"currency": "COINS", "amount": 50}

    # In flight: a purchase whose transaction began before the end, finishing after it.
    body = {"sku": "potion", "expected_price": expected}
    with psycopg.connect(committed_url, autocommit=False) as flight:
        flight.execute("SELECT now()")
        deadline = time.monotonic() + 30
        while flight.execute("SELECT clock_timestamp() <= %s", (ends_at,)).fetchone() == (True,):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        row = flight.execute(
            "SELECT status, body::jsonb FROM sk_purchase(%s, 'p1', %s, %s, 86400, 1000, 'r1',"
            " 'potion', 1, NULL, 'COINS', 50)",
            (game.id, "in-flight-key-000001", fingerprint("POST", "/v1/purchases", body)),
        ).fetchone()
        flight.commit()
    assert row is not None and row[0] == 201
    assert row[1]["purchase"]["unit_price"] == expected
    assert row[1]["purchase"]["offer_id"] == "flash"

    # After the end, the price the player was shown is refused, never silently changed.
    late = pooled_client.post(
        "/v1/purchases",
        json=body,
        headers=game.headers("player", "p1", **{"Idempotency-Key": "late-key-0000000001"}),
    )
    assert late.status_code == 409
    assert late.get_json()["error"]["code"] == "price_changed"
    assert late.get_json()["error"]["details"]["current"] == {"currency": "COINS", "amount": 100}
    with psycopg.connect(committed_url) as conn:
        assert conn.execute(
            "SELECT balance FROM wallets WHERE game_id = %s AND player_id = 'p1'", (game.id,)
        ).fetchone() == (950,)
        assert conn.execute(
            "SELECT count(*) FROM purchases WHERE game_id = %s", (game.id,)
        ).fetchone() == (1,)
