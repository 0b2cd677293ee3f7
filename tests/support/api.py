"""Requests through Flask's test client, each with a fresh Idempotency-Key, and reads of a
player's wallet and inventory."""

from __future__ import annotations

import uuid
from typing import Any

from .games import Game


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
