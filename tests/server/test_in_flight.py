"""A duplicate arriving while its twin is in flight: it waits and replays, or is told to retry.

The "twin" is a transaction of the test's own holding the key's row uncommitted, exactly what a
slow first request looks like to the database."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator

import psycopg
import pytest

from shopkeep_server import db
from shopkeep_server.app import create_app
from shopkeep_server.runtime import fingerprint
from support import Game, make_config, new_key


@pytest.fixture
def pooled_client(committed_url: str) -> Iterator:
    app = create_app(make_config(committed_url, idempotency_wait_ms=300))
    try:
        yield app.test_client()
    finally:
        app.extensions["shopkeep"].db.close()


def _hold_key(url: str, game: Game, key: str, body: dict) -> psycopg.Connection:
    twin = psycopg.connect(url, autocommit=False)
    twin.execute(
        "SELECT * FROM sk_idempotency_begin(%s, 'p1', %s, %s, 86400, 1000)",
        (game.id, key, fingerprint("POST", "/v1/purchases", body)),
    )
    return twin


def _buy(client, game: Game, key: str, body: dict):
    return client.post("/v1/purchases", json=body, headers=game.headers(**{"Idempotency-Key": key}))


def test_duplicate_gets_in_use_while_twin_holds_the_key(
    pooled_client, committed_url, committed_game
):
    key, body = new_key(), {"sku": "potion"}
    twin = _hold_key(committed_url, committed_game, key, body)
    try:
        response = _buy(pooled_client, committed_game, key, body)
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "idempotency_key_in_use"
        assert response.headers["Retry-After"] == "1"
    finally:
        twin.rollback()
        twin.close()
    # The twin died without an outcome: the key is free, and the retry runs for real.
    retry = _buy(pooled_client, committed_game, key, body)
    assert retry.status_code == 409
    assert retry.get_json()["error"]["code"] == "insufficient_funds"
    assert "Idempotent-Replayed" not in retry.headers


@pytest.mark.planted_outcome
def test_duplicate_waits_for_twin_and_replays_its_outcome(committed_url, committed_game) -> None:
    app = create_app(make_config(committed_url, idempotency_wait_ms=10_000))
    client = app.test_client()
    key, body = new_key(), {"sku": "potion"}
    twin = _hold_key(committed_url, committed_game, key, body)
    stored = json.dumps({"purchase": {"id": "from-the-twin"}})
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(_buy, client, committed_game, key, body)
            time.sleep(0.5)  # let the duplicate reach the database and wait on the key
            assert not waiting.done()
            twin.execute(
                "SELECT sk_idempotency_finish(%s, 'p1', %s, %s, 86400, 201, %s)",
                (committed_game.id, key, fingerprint("POST", "/v1/purchases", body), stored),
            )
            twin.commit()
            response = waiting.result(timeout=30)
        assert response.status_code == 201
        assert response.data.decode() == stored
        assert response.headers["Idempotent-Replayed"] == "true"
    finally:
        twin.close()
        app.extensions["shopkeep"].db.close()
    with db.connect(committed_url) as conn:
        made = conn.execute(
            "SELECT count(*) FROM purchases WHERE game_id = %s", (committed_game.id,)
        ).fetchone()
    assert made == (0,)
