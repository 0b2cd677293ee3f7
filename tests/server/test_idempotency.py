"""Idempotency exactly as API.md says: replays, fingerprints, stored failures, in-flight twins."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx
import psycopg

from support import (
    Game,
    LiveServer,
    balances,
    buy,
    grant,
    lock_held,
    make_game,
    new_key,
    post,
    snapshot,
)


def test_replay_is_identical_and_marked(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 100)
    key = new_key()
    first = buy(client, game, "potion", key=key)
    second = buy(client, game, "potion", key=key)
    assert first.status_code == second.status_code == 201
    assert second.data == first.data
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert balances(client, game)["COINS"] == 50


def test_same_key_different_body_is_refused(client, conn, game: Game) -> None:
    grant(client, game, "p1", "COINS", 500)
    key = new_key()
    assert buy(client, game, "potion", key=key).status_code == 201
    before = snapshot(conn, game.id)
    other = buy(client, game, "potion", key=key, quantity=2)
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert snapshot(conn, game.id) == before


def test_key_scope_is_per_subject(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 100)
    grant(client, game, "p2", "COINS", 100)
    key = new_key()
    assert buy(client, game, "potion", key=key, sub="p1").status_code == 201
    other_player = buy(client, game, "potion", key=key, sub="p2")
    assert other_player.status_code == 201
    assert "Idempotent-Replayed" not in other_player.headers
    assert balances(client, game, "p2")["COINS"] == 50


def test_stored_failure_replays_after_top_up(client, game: Game) -> None:
    key = new_key()
    first = buy(client, game, "sword", key=key)
    assert first.status_code == 409
    assert first.get_json()["error"]["code"] == "insufficient_funds"
    grant(client, game, "p1", "COINS", 1000)
    again = buy(client, game, "sword", key=key)
    assert again.status_code == 409
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert balances(client, game)["COINS"] == 1000
    # A new attempt needs a new key.
    assert buy(client, game, "sword").status_code == 201


def test_validation_failure_is_not_stored(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 100)
    key = new_key()
    bad = buy(client, game, "potion", key=key, quantity=0)
    assert bad.status_code == 422
    fixed = buy(client, game, "potion", key=key, quantity=1)
    assert fixed.status_code == 201


def test_missing_and_invalid_keys(client, conn, game: Game) -> None:
    grant(client, game, "p1", "COINS", 100)
    before = snapshot(conn, game.id)
    missing = client.post("/v1/purchases", json={"sku": "potion"}, headers=game.headers())
    assert missing.status_code == 400
    assert missing.get_json()["error"]["code"] == "idempotency_key_missing"
    for bad_key in ["short", "x" * 256, "has space in it ok!", "ünïcödé-key-long-enough"]:
        response = buy(client, game, "potion", key=bad_key)
        assert response.status_code == 400, bad_key
        assert response.get_json()["error"]["code"] == "idempotency_key_invalid"
    assert snapshot(conn, game.id) == before


def test_every_state_changing_post_needs_a_key(client, game: Game) -> None:
    cases = [
        ("player", "/v1/inventory/potion/consume", {"quantity": 1}),
        ("service", "/v1/players/p1/grants", {"currency": "COINS", "amount": 1, "reason": "x"}),
        ("service", "/v1/purchases/00000000-0000-0000-0000-000000000000/refund", {"reason": "x"}),
        ("studio", "/v1/admin/catalog/publish", {}),
        ("studio", "/v1/admin/catalog/rollback", {"version": 1}),
        ("studio", "/v1/admin/stock/dragon_egg", {"add": 1}),
    ]
    for role, path, body in cases:
        response = client.post(path, json=body, headers=game.headers(role, "someone"))
        assert response.status_code == 400, path
        assert response.get_json()["error"]["code"] == "idempotency_key_missing"


def test_studio_operations_replay(client, game: Game) -> None:
    key = new_key()
    first = post(client, "/v1/admin/stock/dragon_egg", {"add": 10}, game, role="studio", key=key)
    second = post(client, "/v1/admin/stock/dragon_egg", {"add": 10}, game, role="studio", key=key)
    assert first.status_code == second.status_code == 200
    assert first.get_json() == {"sku": "dragon_egg", "remaining": 110}
    assert second.data == first.data
    assert second.headers["Idempotent-Replayed"] == "true"
    stock = client.get("/v1/stock?sku=dragon_egg", headers=game.headers()).get_json()
    assert stock["stock"] == [{"sku": "dragon_egg", "remaining": 110}]


def test_purge_removes_only_expired_keys(client, conn: psycopg.Connection, game: Game) -> None:
    from shopkeep_server.store.idempotency import purge_expired

    grant(client, game, "p1", "COINS", 100)
    old_key, new = new_key(), new_key()
    buy(client, game, "potion", key=old_key)
    buy(client, game, "potion", key=new)
    # Expired on a day that is over: its partition (or the default one) goes whole. A key
    # expired today stays stored, unreplayed, until today's partition goes.
    conn.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 day'"
        " WHERE game_id = %s AND key = %s",
        (game.id, old_key),
    )
    assert purge_expired(conn) >= 1
    keys = {
        k
        for (k,) in conn.execute("SELECT key FROM idempotency_keys WHERE game_id = %s", (game.id,))
    }
    assert old_key not in keys
    assert new in keys


def test_fifty_threads_one_key_make_one_purchase(live_server: LiveServer) -> None:
    game = live_server.new_game()
    game.grant("p1", "COINS", 1000)
    key = new_key()
    headers = {
        "Authorization": f"Bearer {game.token('player', 'p1')}",
        "Idempotency-Key": key,
    }
    start = threading.Barrier(50)

    def attempt(_: int) -> httpx.Response:
        start.wait()
        return httpx.post(
            f"{live_server.url}/v1/purchases", json={"sku": "potion"}, headers=headers, timeout=30
        )

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(attempt, range(50)))

    created = [r for r in responses if r.status_code == 201]
    in_use = [r for r in responses if r.status_code == 409]
    assert len(created) + len(in_use) == 50
    assert all(r.json()["error"]["code"] == "idempotency_key_in_use" for r in in_use)
    assert all(r.headers["Retry-After"] == "1" for r in in_use)
    assert len({r.content for r in created}) == 1
    assert sum(1 for r in created if "Idempotent-Replayed" not in r.headers) == 1
    with psycopg.connect(live_server.database_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM purchases WHERE game_id = %s", (game.id,)
        ).fetchone()
        balance = conn.execute(
            "SELECT balance FROM wallets WHERE game_id = %s AND player_id = 'p1'"
            " AND currency = 'COINS'",
            (game.id,),
        ).fetchone()
    assert count == (1,)
    assert balance == (950,)


def test_only_one_purger_at_a_time(
    client, conn: psycopg.Connection, game: Game, database_url
) -> None:
    from shopkeep_server.store.idempotency import PURGE_LOCK, purge_if_free

    with psycopg.connect(database_url, autocommit=True) as other, lock_held(other, PURGE_LOCK):
        assert purge_if_free(conn) is None  # someone else is purging
    assert purge_if_free(conn) == 0


def test_the_server_purges_expired_keys_by_itself(database_url, tmp_path) -> None:
    from support import start_server, stop_server

    with psycopg.connect(database_url, autocommit=True) as conn:
        game = make_game(conn)
        conn.execute(
            "INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, status,"
            " response_body, expires_at) VALUES (%s, 'p1', 'expired-key-0000', 'f', 201, '{}',"
            " now() - interval '1 day')",
            (game.id,),
        )
        server = start_server(
            database_url, tmp_path / "server.log", workers=1, env={"SHOPKEEP_PURGE_INTERVAL": "1"}
        )
        try:
            deadline = time.monotonic() + 60
            left: tuple | None = (1,)
            while time.monotonic() < deadline and left != (0,):
                time.sleep(0.2)
                left = conn.execute(
                    "SELECT count(*) FROM idempotency_keys WHERE game_id = %s", (game.id,)
                ).fetchone()
        finally:
            stop_server(server)
    assert left == (0,)
