"""Helpers the server tests share: requests with fresh keys and snapshots of the money state."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from conftest import Game


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


def post(
    client: Any,
    path: str,
    body: Any,
    game: Game,
    *,
    role: str = "player",
    sub: str = "p1",
    key: str | None = None,
) -> Any:
    headers = game.headers(role, sub, **{"Idempotency-Key": key or new_key()})
    return client.post(path, json=body, headers=headers)


def buy(client: Any, game: Game, sku: str, *, sub: str = "p1", key: str | None = None, **body: Any):
    return post(client, "/v1/purchases", {"sku": sku, **body}, game, sub=sub, key=key)


def grant(client: Any, game: Game, player: str, currency: str, amount: int) -> None:
    response = post(
        client,
        f"/v1/players/{player}/grants",
        {"currency": currency, "amount": amount, "reason": "test funds"},
        game,
        role="service",
        sub="backend",
    )
    assert response.status_code == 201, response.get_json()


def balances(client: Any, game: Game, sub: str = "p1") -> dict[str, int]:
    response = client.get("/v1/wallet", headers=game.headers("player", sub))
    assert response.status_code == 200
    return {b["currency"]: b["amount"] for b in response.get_json()["balances"]}


def inventory(client: Any, game: Game, sub: str = "p1") -> dict[str, int]:
    response = client.get("/v1/inventory", headers=game.headers("player", sub))
    assert response.status_code == 200
    return {i["sku"]: i["quantity"] for i in response.get_json()["items"]}


def snapshot(conn: psycopg.Connection, game_id: str) -> dict[str, Any]:
    """Everything a request could change for a game: compared before and after bad input."""

    def rows(query: str) -> list[tuple[Any, ...]]:
        return conn.execute(query, {"g": game_id}).fetchall()

    return {
        "wallets": rows(
            "SELECT player_id, currency, balance FROM wallets WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "ledger": rows(
            "SELECT count(*), coalesce(sum(delta), 0) FROM ledger_entries WHERE game_id = %(g)s"
        ),
        "inventory": rows(
            "SELECT player_id, sku, quantity FROM inventories WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "item_ledger": rows("SELECT count(*) FROM item_ledger WHERE game_id = %(g)s"),
        "stock": rows(
            "SELECT sku, bucket, remaining FROM stock_buckets WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "purchases": rows("SELECT id, status FROM purchases WHERE game_id = %(g)s ORDER BY 1"),
        "grants": rows("SELECT count(*) FROM grants WHERE game_id = %(g)s"),
        "keys": rows("SELECT count(*) FROM idempotency_keys WHERE game_id = %(g)s"),
        "counts": rows(
            "SELECT player_id, sku, purchased FROM player_item_counts"
            " WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "catalog": rows("SELECT draft_revision, live_version_id FROM games WHERE id = %(g)s"),
    }


def coins_item(sku: str, price: int, **fields: Any) -> dict[str, Any]:
    """A consumable priced in COINS, with any field overridden."""
    return {
        "sku": sku,
        "name": sku.capitalize(),
        "kind": "consumable",
        "prices": [{"currency": "COINS", "amount": price}],
        **fields,
    }


def coins_catalog(*items: dict[str, Any]) -> dict[str, Any]:
    """A catalog with the one currency COINS (scale 0) and these items."""
    return {"currencies": [{"code": "COINS", "name": "Coins", "scale": 0}], "items": list(items)}
